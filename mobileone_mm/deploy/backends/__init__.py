"""The deploy backends by name: one vocabulary for every tool.

``onnxruntime`` (server and desktop CPUs), ``coreml`` (iOS/macOS) and
``ncnn`` (Android). Each implements :class:`base.Backend`; a tool asks
:func:`get_backend` or :func:`backend_names` and never tests which backend
it holds. Older spellings (``onnx``) still work, with a one-line note.

Example:
    >>> [b.name for b in all_backends()]
    ['onnxruntime', 'coreml', 'ncnn']
    >>> backend_names(['ONNX', 'ncnn'], warn=lambda msg: None)
    ('onnxruntime', 'ncnn')
"""
import sys
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from mobileone_mm.utils.errors import UserError
from .base import Backend
from .coreml import CoreMLBackend
from .ncnn import NcnnBackend
from .onnxruntime import OnnxRuntimeBackend

_BACKENDS: Dict[str, Backend] = {
    b.name: b for b in (OnnxRuntimeBackend(), CoreMLBackend(), NcnnBackend())}
#: The backend names, in the order tools list and report them.
BACKEND_NAMES: Tuple[str, ...] = tuple(_BACKENDS)


def _deprecated(msg: str) -> None:
    print(f'note: {msg}', file=sys.stderr)


def backend_name(name: str,
                 warn: Optional[Callable[[str], None]] = _deprecated) -> str:
    """The one name of ``name`` (any case, or an older spelling, which
    ``warn`` is told about); a :class:`UserError` naming the choices for an
    unknown one."""
    key = name.strip().lower()
    if key in _BACKENDS:
        return key
    for backend in _BACKENDS.values():
        if key in backend.aliases:
            if warn is not None:
                warn(f'backend {name!r} is now called {backend.name!r}; '
                     f'the old name is deprecated')
            return backend.name
    raise UserError(f'unsupported backend {name!r}: choose from '
                    f'{" ".join(BACKEND_NAMES)}')


def backend_names(names: Iterable[str],
                  warn: Optional[Callable[[str], None]] = _deprecated
                  ) -> Tuple[str, ...]:
    """:func:`backend_name` of each, duplicates dropped, order kept."""
    return tuple(dict.fromkeys(backend_name(n, warn) for n in names))


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (see :func:`backend_name`)."""
    return _BACKENDS[backend_name(name)]


def all_backends() -> List[Backend]:
    return list(_BACKENDS.values())


__all__ = ['BACKEND_NAMES', 'Backend', 'all_backends', 'backend_name',
           'backend_names', 'get_backend']
