"""8-bit activations and weights for Core ML, made on any OS from the
PyTorch side.

coremltools offers two routes. Its Core ML-side
``coremltools.optimize.coreml.linear_quantize_activations`` calibrates by
running the ML program (``MLModel.predict``), which only macOS can do: on
Linux it stops with ``Exception: Model prediction is only supported on macOS
version 10.13 or later.`` (:func:`coreml_route_error` records what it says
here). Its PyTorch-side ``coremltools.optimize.torch.quantization.
LinearQuantizer`` (documented by coremltools for post-training activation
calibration as well as for QAT) runs in PyTorch: the network is traced with
torch.fx, observers record every activation's range on the calibration
images (fake quantization off, BN statistics frozen: calibration, no
training), ``finalize`` turns it into int8 per-channel weights and
quantize/dequantize pairs at the recorded scales, and ``ct.convert`` maps
those to Core ML ``quantize``/``dequantize`` ops (iOS17). That is what is
done here.

The metric is measured on the finalized PyTorch model that was converted
(same int8 weights, same activation scales; it computes in float32 between
the quantize ops, Core ML in float16), post-processed by the fused model's
own heads. Written here by hand: the fx-friendly output flattening, and the
wrapper that gives the finalized graph a ``predict`` mode.
"""
import platform
from typing import Callable, Dict, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from ..backends.coreml.program import _quiet, export_coreml
from ..compare import FlatOutputs
from ..evaluation import postprocess, unflatten

__all__ = ['A8W8_TARGET', 'QuantizedNetwork', 'a8w8_metric',
           'calibrated_a8w8', 'coreml_route_error', 'export_a8w8']

# quantize/dequantize ops need iOS17 / macOS14
A8W8_TARGET = 'iOS17'
# coremltools' defaults (symmetric: int8 weights per channel, uint8
# activations) with min/max observers, the same ranges as ONNX Runtime's
# minmax calibration; milestones: observers on at step 0, fake quantization
# and the observers' stop never (-1), BN statistics frozen at step 0
QUANTIZER_CONFIG = {'global_config': {
    'quantization_scheme': 'symmetric', 'weight_dtype': 'qint8',
    'weight_per_channel': True, 'activation_dtype': 'quint8',
    'weight_observer': 'min_max', 'activation_observer': 'min_max',
    'milestones': [0, -1, -1, 0]}}
Batch = Union[np.ndarray, torch.Tensor]


class QuantizedNetwork(nn.Module):
    """The finalized int8 graph with the fused model's interface:
    ``mode='tensor'`` gives the raw outputs nested as the fused model
    nests them, ``mode='predict'`` post-processes them with its heads
    (:func:`mobileone_mm.deploy.evaluation.postprocess`); ``data_preprocessor`` is the fused
    model's. Only what evaluation and the report use."""

    def __init__(self, graph: nn.Module, fused: nn.Module,
                 example: torch.Tensor) -> None:
        super().__init__()
        self.graph = graph
        self.fused = fused
        with torch.no_grad():
            self._template = (fused(example, mode='tensor')
                              if hasattr(fused, 'data_preprocessor')
                              else fused(example))
        if hasattr(fused, 'data_preprocessor'):
            self.data_preprocessor = fused.data_preprocessor

    def forward(self, inputs: torch.Tensor, data_samples=None,
                mode: str = 'tensor'):
        with torch.no_grad():
            raw = unflatten(self._template, list(self.graph(inputs)))
        if mode == 'tensor':
            return raw
        if mode == 'predict':
            return postprocess(self.fused, raw, data_samples)
        raise ValueError(f'mode {mode!r}: only tensor and predict')


def calibrated_a8w8(fused: nn.Module, example: torch.Tensor,
                    calibration: Sequence[Batch]) -> nn.Module:
    """The finalized int8 graph (``LinearQuantizer``, calibrated on
    ``calibration``; ``fused`` is not changed). Raises whatever torch.fx or
    coremltools raise for a network they cannot handle."""
    from coremltools.optimize.torch.quantization import (
        LinearQuantizer, LinearQuantizerConfig)
    with _quiet():
        quantizer = LinearQuantizer(
            FlatOutputs(fused).eval(),
            LinearQuantizerConfig.from_dict(QUANTIZER_CONFIG))
        prepared = quantizer.prepare(example_inputs=(example, ),
                                     inplace=False)
        quantizer.step()
        prepared.eval()
        with torch.no_grad():
            for batch in calibration:
                prepared(torch.as_tensor(np.asarray(batch),
                                         dtype=torch.float32))
        return quantizer.finalize(inplace=False).eval()


def export_a8w8(graph: nn.Module, example: torch.Tensor, path: str) -> str:
    """The finalized graph as an fp16 ML program for :data:`A8W8_TARGET`
    (:func:`.coreml.export_coreml`: float32 input and outputs)."""
    return export_coreml(graph, example, path, 'fp16', A8W8_TARGET)


def coreml_route_error(fp16_package: str, example: torch.Tensor
                       ) -> Optional[str]:
    """What coremltools' Core ML-side activation calibration says on this
    machine (``None`` where it would work: macOS, not tried here)."""
    if platform.system() == 'Darwin':
        return None
    import coremltools as ct
    import coremltools.optimize.coreml as cto
    config = cto.OptimizationConfig(
        global_config=cto.experimental.OpActivationLinearQuantizerConfig(
            mode='linear_symmetric'))
    with _quiet():  # its progress bars and logged traceback: not ours
        try:
            cto.linear_quantize_activations(
                ct.models.MLModel(fp16_package, skip_model_load=True),
                config, [{'input': example.numpy()}])
        except Exception as err:  # what coremltools raises is the record
            return (f'coremltools.optimize.coreml.'
                    f'linear_quantize_activations: {type(err).__name__}: '
                    f'{err}')
    return None


def a8w8_metric(graph: nn.Module, fused: nn.Module, example: torch.Tensor,
                evaluate: Optional[Callable[[nn.Module], Dict[str, float]]]):
    """``evaluate`` of the finalized graph behind the fused model's
    interface (:class:`QuantizedNetwork`); ``None`` without ``evaluate``."""
    if evaluate is None:
        return None
    return evaluate(QuantizedNetwork(graph, fused, example).eval())
