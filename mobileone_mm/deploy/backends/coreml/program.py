"""The Core ML backend: conversion to an ML program, and what can be read
back from the saved ``.mlpackage`` on any OS (op counts, conv weights);
latency and the comparison of outputs with PyTorch where Core ML can predict
(macOS). coremltools does the work; what is written here is the glue."""
import collections
import contextlib
import io
import logging
import os
import os.path as osp
import platform
import sys
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from mobileone_mm.utils.errors import UserError
from ...compare import FlatOutputs, compare_outputs, forward_tensors
from ...latency import measure_latency

PRECISIONS = ('fp32', 'fp16')
# ML programs need iOS 15 / macOS 12 at least: the default, the widest reach
# (the paper's iPhone 12, Sec. 3.5, runs it).
TARGETS = ('iOS15', 'iOS16', 'iOS17', 'iOS18')
# coremltools' ComputeUnit names (Core ML chooses among the allowed units).
COMPUTE_UNITS = {'all': 'ALL', 'cpu_and_ne': 'CPU_AND_NE',
                 'cpu_only': 'CPU_ONLY', 'cpu_and_gpu': 'CPU_AND_GPU'}
ConvWeights = Tuple[np.ndarray, Optional[np.ndarray]]


@contextlib.contextmanager
def _quiet():
    """Silence coremltools' progress bars, its warnings about the torch
    version and the missing macOS runtime, and tracer warnings; what was
    said is shown if the block fails."""
    err = io.StringIO()
    logger = logging.getLogger('coremltools')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    except Exception:
        sys.stderr.write(err.getvalue()[-4000:])
        raise
    finally:
        logger.setLevel(level)


def import_coremltools():
    """``coremltools``, imported quietly; stops with the fix when missing."""
    try:
        with _quiet():
            import coremltools as ct
    except ImportError as err:
        raise UserError(f'the coreml backend needs coremltools ({err}): '
                        f'pip install "mobileone_mm[deploy]", or leave '
                        f'coreml out of --backends')
    return ct


def export_coreml(model: nn.Module, example: torch.Tensor, path: str,
                  precision: str = 'fp32', target: str = 'iOS15') -> str:
    """Trace ``model`` (outputs flattened to ``output0..n``) and convert it to
    a Core ML ML program saved as ``path`` (``.mlpackage``)."""
    ct = import_coremltools()
    wrapped = FlatOutputs(model).eval()
    with torch.no_grad():
        num_outputs = len(wrapped(example))
    with _quiet(), torch.no_grad():
        # no re-trace check: the network is static, and its outputs are
        # compared with ONNX Runtime's (and Core ML's on macOS) anyway
        traced = torch.jit.trace(wrapped, example, check_trace=False)
        mlmodel = ct.convert(
            traced,
            # float32 in and out at every precision and target (iOS16+
            # would otherwise make an fp16 program's I/O fp16)
            inputs=[ct.TensorType(name='input', shape=tuple(example.shape),
                                  dtype=np.float32)],
            outputs=[ct.TensorType(name=f'output{i}', dtype=np.float32)
                     for i in range(num_outputs)],
            convert_to='mlprogram',
            compute_precision=(ct.precision.FLOAT16 if precision == 'fp16'
                               else ct.precision.FLOAT32),
            minimum_deployment_target=getattr(ct.target, target))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    mlmodel.save(path)
    return path


def _load_spec(path: str):
    """A saved package's spec and weights folder, without the Core ML
    runtime (``skip_model_load``: works on any OS)."""
    ct = import_coremltools()
    with _quiet():
        mlmodel = ct.models.MLModel(path, skip_model_load=True)
    spec = mlmodel.get_spec()
    if not spec.HasField('mlProgram'):
        raise ValueError(f'{path} is not an ML program')
    return spec, mlmodel.weights_dir


def coreml_ops(path: str) -> Dict[str, int]:
    """Operation counts of a saved ML program's ``main`` function, read from
    its spec (works on any OS; no Core ML runtime needed)."""
    spec, _ = _load_spec(path)
    main = spec.mlProgram.functions['main']
    block = main.block_specializations[main.opset]
    counts = collections.Counter(op.type for op in block.operations)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def coreml_conv_weights(path: str) -> List[ConvWeights]:
    """Every ``conv`` of a saved ML program's ``main`` function as
    ``(weight, bias)`` numpy arrays (``bias`` ``None`` where the conv has
    none), in program order, in the program's own dtype (float16 in an fp16
    program). Read from the spec and the weights blob: works on any OS.

    coremltools folds a BN that follows a conv into the conv's weights, so
    these equal the PyTorch convs' only where no BN follows (a fused
    MobileOne backbone: every conv is a block's ``reparam_conv`` or an SE
    conv)."""
    from coremltools.converters.mil.frontend.milproto.load import load
    spec, weights_dir = _load_spec(path)
    with _quiet():
        program = load(spec, spec.specificationVersion, weights_dir)
    out = []
    for op in program.functions['main'].operations:
        if op.op_type == 'conv':
            bias = op.inputs.get('bias')
            out.append((np.asarray(op.weight.val),
                        None if bias is None else np.asarray(bias.val)))
    return out


def torch_conv_weights(model: nn.Module,
                       example: torch.Tensor) -> List[ConvWeights]:
    """Every ``nn.Conv2d`` of ``model`` as ``(weight, bias)`` numpy arrays,
    in the order a forward pass on ``example`` calls them (the order of the
    traced, and so of the exported, program).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 3))
        >>> weights = torch_conv_weights(net, torch.zeros(1, 3, 5, 5))
        >>> [w.shape for w, _ in weights]
        [(4, 3, 1, 1), (2, 4, 3, 3)]
    """
    called: List[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda conv, *_: called.append(conv))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        forward_tensors(model.eval(), example)
    finally:
        for hook in hooks:
            hook.remove()
    return [(c.weight.detach().cpu().numpy(),
             None if c.bias is None else c.bias.detach().cpu().numpy())
            for c in called]


def coreml_latency(path: str, input_shape: Sequence[int], runs: int,
                   compute_units: str = 'all') -> Tuple[Optional[dict], str]:
    """Core ML latency with the paper's protocol where Core ML can predict
    (macOS); elsewhere ``(None, note)``."""
    if platform.system() != 'Darwin':
        return None, (f'Core ML latency needs macOS (Core ML predicts only '
                      f'there); this is {platform.system()}: ONNX Runtime and '
                      f'PyTorch are timed instead')
    ct = import_coremltools()
    units = getattr(ct.ComputeUnit, COMPUTE_UNITS[compute_units])
    mlmodel = ct.models.MLModel(path, compute_units=units)  # load (compile)
    feed = {'input': np.random.rand(*input_shape).astype(np.float32)}
    stats = measure_latency(lambda: mlmodel.predict(feed), runs)
    return stats, f'Core ML on {platform.mac_ver()[0] or "macOS"}, ' \
                  f'compute units {compute_units}'


def coreml_compare(path: str, model: nn.Module,
                   x: torch.Tensor) -> Optional[Dict[str, float]]:
    """Core ML against PyTorch on ``x`` (:func:`compare.compare_outputs`);
    ``None`` where Core ML cannot predict (not macOS)."""
    if platform.system() != 'Darwin':
        return None
    ct = import_coremltools()
    out = ct.models.MLModel(path).predict({'input': x.numpy()})
    return compare_outputs([out[f'output{i}'] for i in range(len(out))],
                           forward_tensors(model.eval(), x))

