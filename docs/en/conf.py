"""Sphinx configuration of the mobileone_mm documentation (``make docs``).

Markdown pages through myst-parser, as OpenMMLab's documentation does; the
API reference from the package's docstrings (autodoc + napoleon for their
Google style). ``make docs`` runs ``sphinx-build -W --keep-going``: every
warning (a broken link, a page missing from a toctree, a docstring that does
not parse) fails the build.
"""
import os
import sys

sys.path.insert(0, os.path.abspath('../..'))

project = 'mobileone_mm'
copyright = '2026, mobileone_mm contributors'
author = 'mobileone_mm contributors'
release = '0.1.0'

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
]
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build']

myst_heading_anchors = 3
myst_enable_extensions = ['colon_fence']

autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_default_options = {'members': True, 'show-inheritance': False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = 'alabaster'
html_title = 'mobileone_mm'
html_static_path = []
