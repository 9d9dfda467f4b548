"""One version everywhere: the package, its installed metadata, pyproject."""
import importlib.metadata
import re

import mobileone_mm

from .conftest import ROOT


def test_version():
    pyproject = (ROOT / 'pyproject.toml').read_text()
    project = pyproject.split('[project]', 1)[1].split('\n[', 1)[0]
    declared = re.findall(r'^version = "([^"]+)"$', project, re.M)
    assert declared == [mobileone_mm.__version__]
    assert mobileone_mm.__version__ == importlib.metadata.version('mobileone_mm')
