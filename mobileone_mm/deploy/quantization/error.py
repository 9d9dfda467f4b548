"""Per-layer int8 error: the signal-to-quantization-noise ratio (dB) of every
quantized weight and activation, with ONNX Runtime's own
``onnxruntime.quantization.qdq_loss_debug`` (weights: float against
dequantized; activations: the QDQ model's tensor before and after its
QuantizeLinear/DequantizeLinear pair, and against the float model's same
tensor on the same inputs). Written here: the ranking and naming, and
undoing one mismatch of ``create_activation_matching``: ONNX Runtime folds
a ReLU/Clip after a conv into the quantized range, so in the QDQ graph the
tensor before the Q/DQ pair is the conv's output *before* the activation
and ``qdq_err`` would compare it with the activated, quantized tensor (on a
tiny MobileOne: 2 dB instead of 45 dB). The activation is applied to that
tensor first (:func:`refold`)."""
import contextlib
import logging
import math
import os.path as osp
import tempfile
from typing import Callable, Dict, Iterator, List, Optional

import numpy as np

from .onnxruntime_int8 import calibration_reader

__all__ = ['WORST', 'biases', 'folded_activations', 'per_layer_snr', 'refold',
           'worst_layers']

WORST = 5  # layers named in the report and the table


def _finite(db: float) -> Optional[float]:
    """JSON has no infinity: an exact tensor (no noise) is ``None``."""
    db = float(db)
    return round(db, 2) if math.isfinite(db) else None


def _graph(path: str):
    import onnx
    return onnx.load(path, load_external_data=False).graph


def _consumers(path: str) -> Dict[str, str]:
    """Tensor name -> the name of the node that produces it, or for a weight
    the node that reads it: the layer a tensor belongs to."""
    owner: Dict[str, str] = {}
    for node in _graph(path).node:
        for name in node.input:
            owner.setdefault(name, node.name)
        for name in node.output:
            owner[name] = node.name
    return owner


def folded_activations(float_path: str,
                       qdq_path: str) -> Dict[str, Callable]:
    """Tensors a float-model ReLU/Clip produces that the QDQ model produces
    by another op (the activation folded into quantization), each with the
    activation as a numpy function."""
    import onnx.numpy_helper as nh
    float_graph = _graph(float_path)
    consts = {i.name: nh.to_array(i) for i in float_graph.initializer}
    qdq_producer = {o: n.op_type for n in _graph(qdq_path).node
                    for o in n.output}
    folded: Dict[str, Callable] = {}
    for node in float_graph.node:
        out = node.output[0]
        if node.op_type not in ('Relu', 'Clip') or \
                qdq_producer.get(out) in (None, node.op_type):
            continue
        if node.op_type == 'Relu':
            folded[out] = lambda x: np.maximum(x, 0)
        else:
            lo, hi = (consts.get(n) if n else None
                      for n in (list(node.input) + ['', ''])[1:3])
            folded[out] = lambda x, lo=lo, hi=hi: np.clip(x, lo, hi)
    return folded


def refold(matched: dict, folded: Dict[str, Callable]) -> dict:
    """``matched`` with each folded activation applied to ``pre_qdq``."""
    out = dict(matched)
    for name, act in folded.items():
        if name in out and out[name].get('pre_qdq') is not None:
            out[name] = dict(out[name],
                             pre_qdq=[act(t) for t in out[name]['pre_qdq']])
    return out


def biases(path: str) -> set:
    """Initializers that are a Conv's or Gemm's bias (input 2)."""
    return {n.input[2] for n in _graph(path).node
            if n.op_type in ('Conv', 'ConvTranspose', 'Gemm')
            and len(n.input) > 2}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _root_log_collected() -> Iterator[List[str]]:
    """What ``qdq_loss_debug`` logs through the root logger, collected
    instead of printed: it reports a weight it cannot pair (e.g. a bias
    the quantizer duplicated as ``bias0``/``bias1`` for two convs that
    share it) as ``ERROR:root:Model Error``, which reads like a failure of
    the tool while the only effect is one tensor without an SNR."""
    root = logging.getLogger()
    saved = root.handlers[:]
    collect = _Collect()
    root.handlers = [collect]
    try:
        yield collect.messages
    finally:
        root.handlers = saved


def weight_snr(float_path: str, qdq_path: str,
               unmatched: Optional[List[str]] = None
               ) -> Dict[str, Optional[float]]:
    """SNR (dB) of every quantized weight and bias, float against
    dequantized; what ``qdq_loss_debug`` could not pair goes to
    ``unmatched``."""
    from onnxruntime.quantization.qdq_loss_debug import (
        compute_weight_error, create_weight_matching)
    with _root_log_collected() as messages:
        matched = create_weight_matching(float_path, qdq_path)
    if unmatched is not None:
        unmatched.extend(messages)
    errors = compute_weight_error(matched)
    return {name: _finite(db) for name, db in sorted(errors.items())}


def activation_snr(float_path: str, qdq_path: str,
                   batches: List[np.ndarray],
                   input_name: str) -> Dict[str, Dict[str, Optional[float]]]:
    """SNR (dB) of every quantized activation on ``batches``: ``qdq`` (the
    tensor's own rounding) and ``xmodel`` (against the float model, i.e. the
    error accumulated up to that tensor)."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations, compute_activation_error,
        create_activation_matching, modify_model_output_intermediate_tensors)
    with tempfile.TemporaryDirectory() as tmp:
        acts = {}
        for kind, path in (('float', float_path), ('qdq', qdq_path)):
            augmented = osp.join(tmp, f'{kind}.onnx')
            modify_model_output_intermediate_tensors(path, augmented)
            acts[kind] = collect_activations(
                augmented, calibration_reader(input_name, batches),
                execution_providers=['CPUExecutionProvider'])
    matched = refold(create_activation_matching(acts['qdq'], acts['float']),
                     folded_activations(float_path, qdq_path))
    errors = compute_activation_error(matched)
    return {name: {'qdq': _finite(err.get('qdq_err', float('nan'))),
                   'xmodel': _finite(err.get('xmodel_err', float('nan')))}
            for name, err in sorted(errors.items())}


def worst_layers(weights: Dict[str, Optional[float]],
                 activations: Dict[str, Dict[str, Optional[float]]],
                 owner: Dict[str, str], n: int = WORST) -> List[dict]:
    """The ``n`` tensors with the lowest SNR of their own quantization
    (weights, and activations' ``qdq``: the accumulated ``xmodel`` error
    only grows towards the output and would always name the last layers)."""
    rows = [dict(tensor=t, kind='weight', snr_db=db)
            for t, db in weights.items() if db is not None]
    rows += [dict(tensor=t, kind='activation', snr_db=e['qdq'])
             for t, e in activations.items() if e['qdq'] is not None]
    rows.sort(key=lambda r: r['snr_db'])
    for row in rows[:n]:
        row['layer'] = owner.get(row['tensor'], row['tensor'])
    return rows[:n]


def per_layer_snr(float_path: str, qdq_path: str,
                  batches: List[np.ndarray], input_name: str,
                  n_worst: int = WORST) -> dict:
    """The report's ``per_layer_snr_db`` section.

    Args:
        float_path: The float model the QDQ model was made from (same tensor
            names: ``quantize.preprocessed_path``).
        qdq_path: The int8 QDQ model.
        batches: Inputs to collect activations on (a few calibration
            batches are enough for the ranking).
        input_name: The graph's input.
    """
    unmatched: List[str] = []
    every = weight_snr(float_path, qdq_path, unmatched)
    bias_names = biases(float_path)
    weights = {k: v for k, v in every.items() if k not in bias_names}
    activations = activation_snr(float_path, qdq_path, batches, input_name)
    return dict(
        weights=weights, activations=activations,
        biases={k: v for k, v in every.items() if k in bias_names},
        worst=worst_layers(weights, activations, _consumers(float_path),
                           n_worst),
        unmatched=unmatched,
        note='20*log10(|x| / |x - q(x)|) per tensor (onnxruntime '
             'qdq_loss_debug); null: exact (no noise); activations on '
             f'{len(batches)} calibration batches; worst: weights and '
             'activations (an int32 bias is off by at most half an '
             'accumulator step, far below the output\'s int8 step, so a '
             'tiny bias\'s low SNR is no layer\'s problem)')
