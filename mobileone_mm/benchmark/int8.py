"""The int8 rows of the benchmark (``--int8``): fused MobileOne S0-S4 and
MobileNetV2-1.0 quantized to int8 with ONNX Runtime's static quantization
(:func:`mobileone_mm.deploy.quantization.onnxruntime_int8.quantize_onnx`, the project's own
settings), timed against the same model's fp32 ONNX Runtime session with 1
and 2 intra-op threads.

Latency only: there is no data set here, so the int8 models are calibrated
on a few random-normal batches (the exported models take normalized input,
roughly N(0, 1)); the activation ranges and so the int8 accuracy are those
of random data, but the kernels, shapes and op count (what the time depends
on) are those of a calibrated model. The int8 accuracy of trained models is
measured by ``tools/analysis/quant_accuracy.py``.

Per thread count, each model's fp32 and int8 sessions are timed in
alternating blocks with every other model's (:func:`~mobileone_mm.deploy.
latency.interleaved_blocks`), so the int8/fp32 ratio compares runs taken
side by side, under the same machine load."""
import os
from typing import Callable, Dict, Hashable, List, Sequence, Tuple

import numpy as np

from mobileone_mm.deploy.latency import interleaved_blocks
from mobileone_mm.deploy.backends.onnxruntime import onnx_runner, onnx_session
from mobileone_mm.deploy.quantization.onnxruntime_int8 import (count_quantized_ops, quantize_onnx,
                                          runtime_ops)
from mobileone_mm.utils.errors import UserError

# The models that get int8 rows (the paper's fused S0-S4 and its baseline).
INT8_MODELS = tuple(f'mobileone_s{i}_fused' for i in range(5)) + (
    'mobilenet_v2_1.0', )
INT8_THREADS = (1, 2)
# quantize_onnx's keyword arguments for the benchmark (its defaults: QDQ,
# weights int8 per channel, activations int8, min-max ranges).
QUANT_OPTIONS: Dict[str, object] = dict(per_channel=True, method='minmax')
CALIBRATION = dict(batches=4, distribution='standard normal', seed=0)
CALIBRATION_NOTE = (f"calibrated on {CALIBRATION['batches']} random-normal "
                    'batches (no data set): latency only, not accuracy')
VARIANTS = ('fp32', 'int8')

Runner = Callable[[], object]


def session_key(variant: str, threads: int) -> str:
    """The worker's name of one timed session, e.g. ``'int8@2'``."""
    return f'{variant}@{threads}'


def check_int8(models: Sequence[str], threads: Sequence[int]) -> None:
    """A one-line :class:`UserError` when ``models`` and ``threads`` can
    give no int8 row."""
    if not threads or any(n < 1 for n in threads):
        raise UserError('--int8-threads must be 1 or more')
    if not any(m in INT8_MODELS for m in models):
        raise UserError('--int8 measures ' + ' '.join(INT8_MODELS)
                        + '; none of them is among the models: add '
                        'mobileone_s0_fused to --models')


def calibration_batches(input_shape: Sequence[int]) -> List[np.ndarray]:
    """:data:`CALIBRATION`'s random-normal NCHW batches (seeded)."""
    gen = np.random.default_rng(CALIBRATION['seed'])
    return [gen.standard_normal(tuple(input_shape)).astype(np.float32)
            for _ in range(CALIBRATION['batches'])]


def prepare_int8(fp32_path: str, input_shape: Sequence[int],
                 threads: Sequence[int] = INT8_THREADS
                 ) -> Tuple[Dict, Dict[str, Runner]]:
    """Quantize the exported ``fp32_path`` (beside it, ``*.int8.onnx``) and
    open an fp32 and an int8 session per thread count. Returns the int8
    part of the report row (options, op counts of the int8 file and of the
    graph ONNX Runtime runs, file sizes) and a runner per
    :func:`session_key`."""
    int8_path = f'{os.path.splitext(fp32_path)[0]}.int8.onnx'
    quantize_onnx(fp32_path, int8_path, calibration_batches(input_shape),
                  **QUANT_OPTIONS)
    info = dict(quantization=dict(QUANT_OPTIONS, calibration=CALIBRATION_NOTE),
                quantized_ops=count_quantized_ops(int8_path),
                runtime_ops=runtime_ops(int8_path),
                model_mb={v: os.path.getsize(p) / 1e6 for v, p in
                          (('fp32', fp32_path), ('int8', int8_path))},
                latency_ms={})
    runners = {}
    for n in threads:
        for variant, path in (('fp32', fp32_path), ('int8', int8_path)):
            runners[session_key(variant, n)] = onnx_runner(
                onnx_session(path, n), input_shape)
    return info, runners


def time_int8(timers: Dict[str, Dict[str, Callable[[int], Sequence[float]]]],
              threads: Sequence[int], runs: int,
              log: Callable[[str], None] = print) -> Dict[str, Dict]:
    """``timers[model][session_key]``: block timers (``n -> n times``).
    Per thread count, every model's fp32 and int8 runs are taken in 10
    alternating blocks; returns ``{model: {str(threads): {'fp32': stats,
    'int8': stats}}}``."""
    out: Dict[str, Dict] = {name: {} for name in timers}
    for n in threads:
        log(f'timing fp32 vs int8 in ONNX Runtime, {n} thread(s): '
            f'{len(timers)} model(s), {runs} runs each ...')
        keyed: Dict[Hashable, Callable] = {
            (name, v): t[session_key(v, n)]
            for name, t in timers.items() for v in VARIANTS}
        for (name, variant), stats in interleaved_blocks(keyed, runs).items():
            out[name].setdefault(str(n), {})[variant] = stats
    return out
