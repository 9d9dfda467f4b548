"""Files the package ships: configs and tools, found from the package itself
(``mobileone_mm/.mim/``, as ``mim`` finds them), so that code works from any
folder and from an installed copy, not only from a checkout's root."""
import os.path as osp

PACKAGE_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_path(name: str) -> str:
    """The shipped config ``name`` (relative to ``configs/``).

    Example:
        >>> path = config_path('detection/ssdlite_mobileone_s0.py')
        >>> osp.isfile(path) and path.endswith('ssdlite_mobileone_s0.py')
        True
    """
    path = osp.join(PACKAGE_ROOT, '.mim', 'configs', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'mobileone_mm ships no config {name!r} '
                                f'(looked for {path})')
    return path
