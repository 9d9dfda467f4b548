"""MobileOne for OpenMMLab: ``custom_imports=dict(imports=['mobileone_mm'])``."""
from .utils.compat import apply_stack_fixes
from .version import __version__

apply_stack_fixes()

from .deploy import reparameterize  # noqa: E402
from .models import MobileOne, MobileOneBlock  # noqa: E402

__all__ = ['MobileOne', 'MobileOneBlock', 'reparameterize', '__version__']
