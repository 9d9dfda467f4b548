"""Narrow fixes for known breakages of the tested stack (the pins in
requirements/constraints.txt), and the one check of what this torch's ONNX
exporter defaults to.

Each fix is applied once at ``import mobileone_mm`` and is covered by a test in
``tests/test_utils/test_compat.py``.
"""
import inspect
import pickle
from typing import Optional

import numpy as np
import torch


def _history_buffer_method(owner, name: str):
    """Stands in for ``builtins.getattr`` while unpickling, resolving only the
    statistics methods that ``HistoryBuffer.__getstate__`` pickles
    (``getattr(HistoryBuffer, 'mean')``); a real ``getattr`` would let a
    checkpoint reach arbitrary code."""
    from mmengine.logging import HistoryBuffer
    method = getattr(HistoryBuffer, name, None) if owner is HistoryBuffer else None
    if name.startswith('_') or not inspect.isfunction(method):
        raise pickle.UnpicklingError(
            f'refusing getattr({owner!r}, {name!r}) in a weights-only load')
    return method


def _safe_checkpoint_globals() -> list:
    """The non-tensor types mmengine writes into its checkpoints.

    A runner checkpoint holds numpy scalars/arrays (``meta``, the message
    hub's ``HistoryBuffer``s) besides tensors; these are plain data, so
    allow-listing them keeps ``weights_only=True`` (no arbitrary code).
    """
    from mmengine.logging import HistoryBuffer
    multiarray = np.core.multiarray
    allowed = [multiarray.scalar, multiarray._reconstruct, np.ndarray,
               np.dtype, HistoryBuffer,
               (_history_buffer_method, 'builtins.getattr')]
    # numpy >= 1.25 pickles dtypes as instances of per-type classes.
    allowed += [type(np.dtype(t)) for t in
                (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                 np.uint16, np.uint32, np.uint64, np.float16, np.float32,
                 np.float64, np.str_)]
    return allowed


def allow_mmengine_checkpoints() -> None:
    # torch>=2.6 loads with weights_only=True: allow-list mmengine's safe types.
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:
        add(_safe_checkpoint_globals())


def _onnx_dynamo_param() -> Optional[inspect.Parameter]:
    return inspect.signature(torch.onnx.export).parameters.get('dynamo')


def onnx_export_takes_dynamo() -> bool:
    """Whether ``torch.onnx.export`` has a ``dynamo`` switch (torch >= 2.5)."""
    return _onnx_dynamo_param() is not None


def dynamo_is_default() -> bool:
    """Whether this torch's ``torch.onnx.export`` uses the dynamo exporter
    by default (torch >= 2.9), which cannot trace mmdeploy's rewritten
    models; the TorchScript exporter (``dynamo=False``) can."""
    param = _onnx_dynamo_param()
    return param is not None and param.default is True


def apply_stack_fixes() -> None:
    allow_mmengine_checkpoints()
