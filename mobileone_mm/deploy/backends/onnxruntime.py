"""The ``onnxruntime`` backend: ONNX export, op count, ONNX Runtime session,
comparison with PyTorch and latency (torch's exporter, onnx and onnxruntime;
nothing hand-written but the glue). The complete model is the graph of
:mod:`mobileone_mm.deploy.postprocess` without NMS (ONNX Runtime's outputs
are checked against mmdet's and mmseg's in :mod:`..full_model`)."""
import collections
import os
import os.path as osp
from importlib.util import find_spec
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from mobileone_mm.utils.compat import onnx_export_takes_dynamo
from mobileone_mm.utils.errors import UserError
from ..compare import (DIFF_KEYS, RTOL, FlatOutputs, compare_outputs,
                       flatten, forward_tensors)
from ..latency import measure_latency
from ..postprocess import DetectorGraph
from .base import Backend


def require_onnx() -> None:
    """Stop with the fix when onnx or onnxruntime is missing."""
    missing = [m for m in ('onnx', 'onnxruntime') if find_spec(m) is None]
    if missing:
        raise UserError(f'the onnxruntime backend needs '
                        f'{" and ".join(missing)}: pip install '
                        f'"mobileone_mm[deploy]", or leave onnxruntime out '
                        f'of --backends')


def export_onnx(model: nn.Module, example: torch.Tensor, path: str,
                opset: int = 17) -> str:
    """Export ``model`` (eval mode, static shape of ``example``) with the
    TorchScript-based exporter (``dynamo=False``: deterministic op set, no
    onnxscript dependency)."""
    model = FlatOutputs(model).eval()
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


class OnnxRuntimeBackend(Backend):
    """ONNX (opset 17) run by ONNX Runtime on the CPU."""
    name, title, aliases = 'onnxruntime', 'ONNX Runtime', ('onnx', 'ort')
    quantization = 'int8 QDQ, static calibration (onnxruntime.quantization)'
    conv_ops, add_ops = ('Conv', ), ('Add', )

    def require(self) -> None:
        require_onnx()

    def export(self, model: nn.Module, example: torch.Tensor, stem: str,
               options=None) -> str:
        return export_onnx(model, example, f'{stem}.onnx')

    def ops(self, path: str) -> Dict[str, int]:
        return onnx_ops(path)

    def run(self, path: str, x: torch.Tensor) -> List[np.ndarray]:
        return onnx_run(onnx_session(path), x.numpy())

    def runner(self, path: str, input_shape: Sequence[int],
               threads: int = 0) -> Callable[[], object]:
        return onnx_runner(onnx_session(path, threads), input_shape)

    def complete(self, exporter, graph: nn.Module, image: torch.Tensor,
                 labels: Sequence[str]) -> Optional[dict]:
        exporter.log('ONNX: exporting the complete model (decoding, no NMS)')
        path = self.export(graph, image, osp.join(exporter.work_dir, 'model'))
        with torch.no_grad():
            reference = flatten(graph(image))
        outputs = self.run(path, image)
        check = compare_outputs(outputs, reference)
        detector = isinstance(graph, DetectorGraph)  # no NMS: raw outputs
        return dict(path=path, ops=self.ops(path),
                    predictions=('scores_boxes', outputs) if detector
                    else ('class_map', outputs[0]),
                    **{k: check[k] for k in DIFF_KEYS})
