"""ONNX Runtime int8: static post-training quantization of an exported fp32
ONNX model with the library's own tools (``quant_pre_process``, then
``quantize_static`` in the QDQ format), a count of the int8 graph, and of
the graph ONNX Runtime makes of it (:func:`runtime_ops`).

Choices (ONNX Runtime's quantization guide, "Data type selection"):

- QDQ format: QuantizeLinear/DequantizeLinear pairs around float ops, which
  ONNX Runtime fuses into integer kernels at session creation; the same
  file runs on every execution provider.
- Weights QInt8 (symmetric), per output channel by default: a fused
  MobileOne conv sums the 3x3, 1x1 and identity branches with their BN
  scales folded in, so its channels' ranges differ widely (the QARepVGG
  trap); one scale per tensor wastes most levels of the small channels.
- Activations QInt8 (asymmetric, so a ReLU output still uses all 256
  levels): S8S8 QDQ is the guide's recommended first choice. On x86,
  ONNX Runtime runs it as U8S8 anyway (see "Speed" below). Its u8 x s8
  kernels without VNNI use ``VPMADDUBSW``, whose 16-bit intermediate sums
  can saturate; ``reduce_range`` (7-bit weights) avoids that at a cost in
  accuracy, so it is not used here.
- Entropy calibration with a 2048-bin histogram (:data:`ENTROPY_BINS`,
  TensorRT's choice): ONNX Runtime's ``EntropyCalibrater`` defaults to 128
  bins and 128 quantized bins, so its KL search has one candidate, the full
  range, and gives exactly min-max's ranges; ``quantize_static`` passes no
  bin counts through. The ranges are computed with ONNX Runtime's own
  calibrator and handed to ``quantize_static`` as its calibration cache.
- ReLU/Clip after a conv are removed (ONNX Runtime's default): the
  output's quantized range [0, max] does their work. Keeping them
  (``QDQKeepRemovableActivations``) only adds a Q/DQ pair per activation;
  ``error`` accounts for the removal.

Speed on x86 (ONNX Runtime 1.32, fused S0 at 224x224, measured on a 2-core
AMD EPYC Zen 2 with AVX2 and FMA, no AVX-512 or VNNI; docs/en/notes/int8_cpu.md):

- Off ARM, ONNX Runtime rewrites int8 activation Q/DQ pairs as uint8 ones
  (its ``QDQS8ToU8Transformer``; ``QDQIsInt8Allowed()`` is false) and fuses
  every ``DequantizeLinear -> Conv -> QuantizeLinear`` into a U8S8
  ``QLinearConv`` (NHWC). QInt8 or QUInt8 activations, QDQ or QOperator
  files, weights per channel or per tensor: all give the same kernels, and
  times within noise (0.91-0.95x of fp32 with one thread). There is no
  faster option to offer, so this module has none; :func:`runtime_ops`
  shows the graph ONNX Runtime really runs.
- Keeping activations int8 (a QOperator S8S8 file, or the session option
  ``session.qdqisint8allowed=1``) was 4.6x slower: MLAS's x86 S8S8 GEMM
  kernels need AVX-VNNI-INT8; otherwise it runs its portable C++ one.
- ``reduce_range`` changes no kernel: no faster, and 7 dB less output SNR
  on the random-weight S0. ONNX Runtime's own remedy for the saturation
  (session option ``session.x64quantprecision=1``: uint8 weights, U8U8
  kernels) kept the SNR and was 10 % slower.
- Without VNNI, one u8 x s8 multiply-add (``VPMADDUBSW`` + ``VPMADDWD``, 32
  products) peaked at 1.2x the fp32 FMA rate on this Zen 2, so the 1x1
  convolutions (3/4 of fused S0's time) run no faster in int8, and ONNX
  Runtime's int8 depthwise and stem convolutions are slower than its fp32
  NCHWc ones. Here int8 buys a 3.6x smaller file, not speed; CPUs with VNNI
  (``VPDPBUSD``: the same 32 products in one instruction) have the headroom.
"""
import collections
import inspect
import os
import os.path as osp
import tempfile
from typing import Dict, Iterable, Iterator, Optional

import numpy as np

from mobileone_mm.utils.errors import UserError
from ..backends.onnxruntime import require_onnx

__all__ = ['ENTROPY_BINS', 'METHODS', 'QUANTIZED_OPS', 'calibration_reader',
           'calibration_cache_path', 'count_quantized_ops',
           'graph_input_name', 'int8_initializers', 'preprocessed_path',
           'quantize_onnx', 'runtime_ops']

METHODS = ('minmax', 'entropy', 'percentile')
# Histogram bins and quantized bins of the entropy (KL) threshold search.
ENTROPY_BINS = dict(num_bins=2048, num_quantized_bins=256)
# Operators that only exist in a quantized ONNX graph.
QUANTIZED_OPS = ('QuantizeLinear', 'DequantizeLinear', 'QLinearConv',
                 'ConvInteger', 'MatMulInteger', 'QLinearMatMul',
                 'QLinearAdd', 'QLinearMul', 'QLinearSigmoid',
                 'QLinearGlobalAveragePool', 'QLinearConcat',
                 'QLinearAveragePool', 'DynamicQuantizeLinear')


def _calibration_method(method: str):
    from onnxruntime.quantization import CalibrationMethod
    methods = dict(minmax=CalibrationMethod.MinMax,
                   entropy=CalibrationMethod.Entropy,
                   percentile=CalibrationMethod.Percentile)
    if method not in methods:
        raise UserError(f'unknown calibration method {method!r}: choose '
                        f'from {" ".join(METHODS)}')
    return methods[method]


def calibration_reader(input_name: str, batches: Iterable[np.ndarray]):
    """ONNX Runtime's ``CalibrationDataReader`` over ``batches``."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> Optional[Dict[str, np.ndarray]]:
            batch = next(self._it, None)
            if batch is None:
                return None
            return {input_name: np.ascontiguousarray(batch, np.float32)}

    return Reader()


def graph_input_name(path: str) -> str:
    import onnx
    model = onnx.load(path, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UserError(f'{path}: expected one graph input, found '
                        f'{inputs}; export the model with one image input')
    return inputs[0]


def calibration_cache_path(int8_path: str) -> str:
    """Where the entropy ranges are kept (ONNX Runtime's cache format)."""
    return f'{osp.splitext(int8_path)[0]}.calibration.json'


def entropy_cache(model_path: str, reader, cache_path: str) -> str:
    """Entropy ranges of every tensor of ``model_path`` with
    :data:`ENTROPY_BINS`, saved as ``quantize_static``'s calibration cache."""
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.calibrate import (CalibrationMethod,
                                                    create_calibrator,
                                                    save_tensors_data)
    if 'calibration_cache_path' not in \
            inspect.signature(quantize_static).parameters:
        raise UserError('--method entropy needs an onnxruntime whose '
                        'quantize_static takes calibration_cache_path: '
                        'pip install -U onnxruntime, or use --method minmax')
    with tempfile.TemporaryDirectory() as tmp:
        calibrator = create_calibrator(
            model_path, None,
            augmented_model_path=osp.join(tmp, 'augmented.onnx'),
            calibrate_method=CalibrationMethod.Entropy,
            extra_options=dict(ENTROPY_BINS))
        calibrator.collect_data(reader)
        save_tensors_data(calibrator.compute_data(), cache_path)
    return cache_path


def preprocessed_path(int8_path: str) -> str:
    """Where :func:`quantize_onnx` keeps the pre-processed float model (the
    float twin of the QDQ graph, same tensor names: ``qdq_loss_debug``
    compares the two)."""
    stem, _ = osp.splitext(int8_path)
    return f'{stem}.preprocessed.onnx'


def _check_paths(fp32_path: str, int8_path: str) -> None:
    if not osp.isfile(fp32_path):
        raise UserError(f'fp32 model not found: {fp32_path}; export it '
                        f'first (tools/deploy.py or export_onnx)')
    same = osp.abspath(fp32_path) == osp.abspath(int8_path) or (
        osp.exists(int8_path) and osp.samefile(fp32_path, int8_path))
    written = (preprocessed_path(int8_path), calibration_cache_path(int8_path))
    if same or osp.abspath(fp32_path) in map(osp.abspath, written):
        raise UserError(f'int8 output {int8_path} would overwrite the fp32 '
                        f'model {fp32_path}: choose another int8 path')


def quantize_onnx(fp32_path: str, int8_path: str,
                  calibration: Iterable[np.ndarray],
                  per_channel: bool = True, method: str = 'minmax') -> str:
    """Statically quantize ``fp32_path`` to int8 (QDQ) at ``int8_path``.

    Args:
        fp32_path: The fp32 ONNX model (one image input; its name is read
            from the model). Never written.
        int8_path: Where the int8 model goes (``preprocessed_path`` beside it
            keeps the pre-processed float model).
        calibration: NCHW float32 batches, already normalized as the model
            expects them (the config's pipeline and data preprocessor).
        per_channel: One weight scale per output channel (else per tensor).
        method: ``'minmax'``, ``'entropy'`` or ``'percentile'``
            (ONNX Runtime's ``CalibrationMethod``).

    Returns:
        ``int8_path``.

    Raises:
        UserError: Missing input, an output path equal to the input, an
            unknown method, or no calibration batch.
    """
    require_onnx()
    from onnxruntime.quantization import (QuantFormat, QuantType,
                                          quant_pre_process, quantize_static)
    _check_paths(fp32_path, int8_path)
    calibrate_method = _calibration_method(method)
    batches = list(calibration)
    if not batches:
        raise UserError('no calibration batch: pass at least one image '
                        '(--calib-images >= 1)')
    os.makedirs(osp.dirname(osp.abspath(int8_path)), exist_ok=True)
    pre = preprocessed_path(int8_path)
    quant_pre_process(fp32_path, pre)  # shape inference + graph optimization
    tmp = f'{osp.splitext(int8_path)[0]}.tmp.onnx'
    reader = calibration_reader(graph_input_name(pre), batches)
    cache = {}
    if method == 'entropy':  # quantize_static reads the ranges from there
        cache = dict(calibration_cache_path=entropy_cache(
            pre, reader, calibration_cache_path(int8_path)))
        reader = None
    quantize_static(pre, tmp, reader, **cache,
                    quant_format=QuantFormat.QDQ,
                    per_channel=per_channel,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=calibrate_method)
    os.replace(tmp, int8_path)  # atomic: no half-written int8 model
    return int8_path


def count_quantized_ops(path: str) -> Dict[str, int]:
    """How many nodes of each quantized operator (:data:`QUANTIZED_OPS`) the
    graph at ``path`` has; an fp32 graph gives ``{}``."""
    import onnx
    graph = onnx.load(path, load_external_data=False).graph
    counts = collections.Counter(n.op_type for n in graph.node
                                 if n.op_type in QUANTIZED_OPS)
    return dict(sorted(counts.items()))


def int8_initializers(path: str) -> Dict[str, int]:
    """Initializers of the graph at ``path`` by element type (``'INT8'``,
    ``'FLOAT'``, ...) and their total element counts: a QDQ model keeps its
    conv weights as INT8 initializers."""
    import onnx
    graph = onnx.load(path, load_external_data=False).graph
    sizes: Dict[str, int] = collections.Counter()
    for init in graph.initializer:
        name = onnx.TensorProto.DataType.Name(init.data_type)
        sizes[name] += int(np.prod(init.dims)) if init.dims else 1
    return dict(sorted(sizes.items()))


def runtime_ops(path: str) -> Dict[str, int]:
    """Node counts by op type (``domain.op`` outside the ONNX domain) of the
    graph ONNX Runtime's CPU provider actually runs: the model at ``path``
    after all its graph optimizations, saved through
    ``SessionOptions.optimized_model_filepath``.

    The file's own ops only say what *may* run in integer arithmetic: ONNX
    Runtime fuses ``DequantizeLinear -> Conv -> QuantizeLinear`` into
    ``QLinearConv`` only where its kernels take the types; anything left
    runs in float between Q/DQ pairs, which is slower than no quantization.
    """
    import onnx
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # not its warning that such a file is
    # specific to this CPU: it is only read back here
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = osp.join(tmp, 'optimized.onnx')
        ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        graph = onnx.load(options.optimized_model_filepath,
                          load_external_data=False).graph
    counts = collections.Counter(
        f'{n.domain}.{n.op_type}' if n.domain else n.op_type
        for n in graph.node)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
