"""setuptools' PEP 517 backend without the PEP 660 editable hooks.

Why: ``mim train mobileone_mm CONFIG`` finds ``mobileone_mm/.mim/{tools,configs}``
from the distribution's *location*. A PEP 660 editable install puts that in
site-packages (where no ``mobileone_mm/`` exists), so mim finds nothing. Without
``build_editable`` pip falls back to ``setup.py develop``, whose location is this
checkout. Regular builds (``pip install .``, wheels, sdists) are setuptools' own.
"""
from setuptools.build_meta import (build_sdist, build_wheel,  # noqa: F401
                                   get_requires_for_build_sdist,
                                   get_requires_for_build_wheel,
                                   prepare_metadata_for_build_wheel)
