"""The ONNX backend: export, op count, ONNX Runtime session, comparison with
PyTorch and latency (torch's exporter, onnx and onnxruntime; nothing
hand-written but the glue)."""
import collections
import os
from importlib.util import find_spec
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch
import torch.nn as nn

from mobileone_mm.utils.compat import onnx_export_takes_dynamo
from mobileone_mm.utils.errors import UserError
from .compare import RTOL, compare_outputs, forward_tensors
from .latency import measure_latency


def require_onnx() -> None:
    """Stop with the fix when onnx or onnxruntime is missing."""
    missing = [m for m in ('onnx', 'onnxruntime') if find_spec(m) is None]
    if missing:
        raise UserError(f'the onnx backend needs {" and ".join(missing)}: '
                        f'pip install "mobileone_mm[deploy]", or pass '
                        f'--backends coreml')


class TensorOutputs(nn.Module):
    """Wraps a model so that it returns a flat tuple of tensors (what an ONNX
    graph can output): backbones return tuples of stages, OpenMMLab models
    are called with ``mode='tensor'`` (the network without post-processing)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return tuple(forward_tensors(self.model, x))


def export_onnx(model: nn.Module, example: torch.Tensor, path: str,
                opset: int = 17) -> str:
    """Export ``model`` (eval mode, static shape of ``example``) with the
    TorchScript-based exporter (``dynamo=False``: deterministic op set, no
    onnxscript dependency)."""
    model = TensorOutputs(model).eval()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad():
        outputs = model(example)
    names = [f'output{i}' for i in range(len(outputs))]
    kwargs = dict(input_names=['input'], output_names=names,
                  opset_version=opset, do_constant_folding=True)
    if onnx_export_takes_dynamo():
        kwargs['dynamo'] = False
    with torch.no_grad():
        torch.onnx.export(model, (example, ), path, **kwargs)
    return path


def onnx_session(path: str, threads: int = 0):
    """An ONNX Runtime CPU session (``threads=0``: onnxruntime's default)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(path, options,
                                providers=['CPUExecutionProvider'])


def onnx_run(session, x: np.ndarray) -> List[np.ndarray]:
    return session.run(None, {session.get_inputs()[0].name: x})


def onnx_ops(path: str) -> Dict[str, int]:
    """Node counts by ``op_type`` of an ONNX graph, most frequent first."""
    import onnx
    counts = collections.Counter(n.op_type for n in onnx.load(path).graph.node)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def onnx_compare(session, model: nn.Module, x: torch.Tensor,
                 rtol: float = RTOL) -> Dict[str, float]:
    """ONNX Runtime against PyTorch on ``x`` (:func:`compare.compare_outputs`)."""
    return compare_outputs(onnx_run(session, x.numpy()),
                           forward_tensors(model.eval(), x), rtol)


def onnx_runner(session, input_shape: Sequence[int]) -> Callable[[], object]:
    """One ONNX Runtime inference on a preallocated random input."""
    x = np.random.rand(*input_shape).astype(np.float32)
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)


def onnx_latency(session, input_shape: Sequence[int],
                 runs: int = 1000) -> Dict[str, float]:
    """The paper's protocol (Sec. 3.5) on an ONNX Runtime session."""
    return measure_latency(onnx_runner(session, input_shape), runs)
