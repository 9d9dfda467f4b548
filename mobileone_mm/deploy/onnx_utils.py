"""ONNX export and ONNX Runtime timing shared by tools/deploy.py and the
benchmark (torch's exporter and onnxruntime; nothing hand-written but the
glue)."""
import os
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch
import torch.nn as nn

from .analysis import measure_latency


class TensorOutputs(nn.Module):
    """Wraps a model so that it returns a flat tuple of tensors (what an ONNX
    graph can output): backbones return tuples of stages, OpenMMLab models
    are called with ``mode='tensor'`` (the network without post-processing)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        from mobileone_mm.apis import forward_tensors
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
    if 'dynamo' in torch.onnx.export.__code__.co_varnames:
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


def onnx_max_abs_diff(session, model: nn.Module, x: torch.Tensor) -> float:
    """Largest absolute difference between ONNX Runtime and PyTorch."""
    from mobileone_mm.apis import forward_tensors
    reference = forward_tensors(model.eval(), x)
    outputs = onnx_run(session, x.numpy())
    if len(outputs) != len(reference):
        raise RuntimeError(f'ONNX graph has {len(outputs)} outputs, PyTorch '
                           f'{len(reference)}')
    return max(float(np.abs(o - r.numpy()).max())
               for o, r in zip(outputs, reference))


def onnx_runner(session, input_shape: Sequence[int]) -> Callable[[], object]:
    """One ONNX Runtime inference on a preallocated random input."""
    x = np.random.rand(*input_shape).astype(np.float32)
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)


def onnx_latency(session, input_shape: Sequence[int],
                 runs: int = 1000) -> Dict[str, float]:
    """The paper's protocol (Sec. 3.5) on an ONNX Runtime session."""
    return measure_latency(onnx_runner(session, input_shape), runs)
