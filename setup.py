# Metadata lives in pyproject.toml; this file lets pip fall back to
# `setup.py develop` for editable installs (see build_tools/editable_backend.py).
from setuptools import setup

setup()
