"""UserError: the one error type for bad user input."""
import pytest

from mobileone_mm.apis import load_config
from mobileone_mm.utils.errors import UserError


def test_user_error_is_what_the_tools_catch():
    assert issubclass(UserError, RuntimeError)
    with pytest.raises(UserError) as err:
        load_config('no/such/config.py')
    assert type(err.value) is UserError
    assert str(err.value) == 'config not found: no/such/config.py'
