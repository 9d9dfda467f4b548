"""``tools/quantize.py`` as a Python API: fuse a config's model exactly as
the deploy tool does (``build_for_deploy`` with strict loading, then
``reparameterize``), export the whole network (``mode='tensor'``) to fp32
ONNX, quantize it to int8 with ONNX Runtime (:mod:`.onnxruntime_int8`) on images
from the config's own pipeline (:mod:`.calibration`), measure the per-layer
SNR (:mod:`.error`), time fp32 against int8 side by side, optionally
evaluate the config's test set for PyTorch, fp32 and int8 (:mod:`..evaluation`),
add the Core ML compression section, and write ``quant_report.json``
(:mod:`mobileone_mm.deploy.quantization.report`). This module only orchestrates."""
import copy
import os
import os.path as osp
import sys
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config

from mobileone_mm.apis import input_shape_from_config, load_config
from mobileone_mm.utils.errors import UserError
from mobileone_mm.utils.machine import machine
from .calibration import SPLITS, calibration_data
from ..latency import interleaved_latency
from ..model_setup import build_for_deploy
from ..backends import all_backends, backend_names, get_backend
from ..backends.onnxruntime import export_onnx, onnx_runner, onnx_session
from ..evaluation import (build_test_loader, evaluate, ort_predictor,
                       torch_predictor)
from .error import per_layer_snr
from .report import (NO_EVAL, REPORT_KEYS, REPORT_NAME,
                           skipped_onnxruntime, write_quant_report)
from .onnxruntime_int8 import (METHODS, count_quantized_ops, graph_input_name,
                       int8_initializers, preprocessed_path, quantize_onnx)
from ..fusion import reparameterize

__all__ = ['QUANT_BACKENDS', 'QuantizeOptions', 'config_and_name',
           'quantize_config']

#: The backends with a quantizer here (``Backend.quantization``).
QUANT_BACKENDS = tuple(b.name for b in all_backends() if b.quantization)
FP32_NAME, INT8_NAME = 'model_fp32.onnx', 'model_int8.onnx'


@dataclass
class QuantizeOptions:
    """What to quantize and measure; checked when made.

    Attributes:
        backends: Any of ``'onnxruntime'`` (int8 QDQ) and ``'coreml'``
            (``coremltools.optimize`` compression); ``'ncnn'`` is refused
            with the reason (its int8 tools are C++ programs no wheel
            ships).
        calib_images: Calibration images (ONNX Runtime).
        calib_split: ``'train'`` or ``'val'``: where they are drawn from.
        method: ``'minmax'``, ``'entropy'`` or ``'percentile'``.
        per_channel: Per-channel weight scales (else per tensor).
        evaluate: Run the config's test set (PyTorch, fp32, int8, Core ML).
        runs: Timed runs of each ONNX Runtime model.
        threads: ONNX Runtime intra-op threads (0: its default).
        snr_images: Calibration images the per-layer SNR is measured on.
    """
    backends: Sequence[str] = QUANT_BACKENDS
    calib_images: int = 32
    calib_split: str = 'train'
    method: str = 'minmax'
    per_channel: bool = True
    evaluate: bool = False
    runs: int = 100
    threads: int = 0
    snr_images: int = 4

    def __post_init__(self) -> None:
        self.backends = backend_names(self.backends)
        if not self.backends:
            raise UserError(f'no backend given: choose from '
                            f'{" ".join(QUANT_BACKENDS)}')
        for name in self.backends:
            if not get_backend(name).quantization:
                raise UserError(get_backend(name).no_quantization)
        for name, allowed in (('method', METHODS),
                              ('calib_split', SPLITS)):
            if getattr(self, name) not in allowed:
                raise UserError(f'unsupported --{name.replace("_", "-")} '
                                f'{getattr(self, name)!r}: choose from '
                                f'{" ".join(allowed)}')
        for name, low in (('calib_images', 1), ('runs', 1), ('threads', 0),
                          ('snr_images', 1)):
            if int(getattr(self, name)) < low:
                raise UserError(f'--{name.replace("_", "-")} must be >= '
                                f'{low}, got {getattr(self, name)}')


def config_and_name(config: Union[str, Config],
          cfg_options: Optional[dict]) -> Tuple[Config, str]:
    """The config (a copy when given loaded: the caller's stays as it was)
    and its name."""
    if not isinstance(config, Config):
        return load_config(config, cfg_options), config
    cfg = copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg, config.filename or '<Config>'


def _log(verbose: bool, msg: str) -> None:
    if verbose:
        print(f'[quantize] {msg}', flush=True)


def _outputs(work_dir: str) -> Sequence[str]:
    return [osp.join(work_dir, n) for n in (
        FP32_NAME, INT8_NAME, REPORT_NAME, preprocessed_path(INT8_NAME))]


def _protect_inputs(inputs: Sequence[Optional[str]], work_dir: str) -> None:
    """Refuse a work dir whose outputs would overwrite the user's files."""
    for path in filter(None, inputs):
        if osp.abspath(path) in {osp.abspath(p) for p in _outputs(work_dir)}:
            raise UserError(f'{path} would be overwritten by the quantize '
                            f'tool\'s output: choose another --work-dir')


def _size_mb(path: str) -> float:
    return round(osp.getsize(path) / 2**20, 3)


def _onnxruntime(o: QuantizeOptions, cfg: Config, fused: nn.Module,
                 example: torch.Tensor, work_dir: str, checkpoint, log,
                 verbose: bool) -> Tuple[dict, dict]:
    """Export, calibrate, quantize, measure SNR and latency: the report's
    ONNX Runtime sections and the two sessions."""
    fp32 = osp.join(work_dir, FP32_NAME)
    int8 = osp.join(work_dir, INT8_NAME)
    log(f'ONNX: exporting the fused model {tuple(example.shape)}')
    export_onnx(fused, example, fp32)
    batches, calib = calibration_data(cfg, fused, o.calib_split,
                                      o.calib_images, example.shape,
                                      checkpoint, verbose)
    log(f'ONNX Runtime: int8 QDQ on {len(batches)} {calib["source"]} '
        f'images ({o.method}, per-{"channel" if o.per_channel else "tensor"})')
    quantize_onnx(fp32, int8, batches, o.per_channel, o.method)
    log('per-layer SNR (onnxruntime qdq_loss_debug)')
    snr = per_layer_snr(preprocessed_path(int8), int8,
                        batches[:o.snr_images], graph_input_name(fp32))
    sessions = {k: onnx_session(p, o.threads)
                for k, p in (('fp32', fp32), ('int8', int8))}
    log(f'ONNX Runtime: timing fp32 and int8, {o.runs} runs each, '
        f'interleaved')
    latency = interleaved_latency(
        {k: onnx_runner(s, tuple(example.shape)) for k, s in
         sessions.items()}, o.runs)
    report = dict(
        fp32=dict(path=fp32, size_mb=_size_mb(fp32), metric=None,
                  latency_ms=latency['fp32']),
        int8=dict(path=int8, size_mb=_size_mb(int8), metric=None,
                  latency_ms=latency['int8'], ops=count_quantized_ops(int8),
                  initializers=int8_initializers(int8),
                  speedup_vs_fp32=round(latency['fp32']['min']
                                        / latency['int8']['min'], 3)),
        per_layer_snr_db=snr,
        calibration=dict(calib, method=o.method, per_channel=o.per_channel))
    return report, sessions


def _evaluate(cfg: Config, fused: nn.Module, example: torch.Tensor,
              report: dict, sessions: dict, log) -> None:
    """PyTorch (fused), ORT fp32 and ORT int8 on the test set, one pass."""
    predictors = dict(pytorch=torch_predictor(fused))
    for key, session in sessions.items():
        predictors[key] = ort_predictor(session, fused, example)
    log(f'evaluating the test set: {", ".join(predictors)}')
    metrics = evaluate(cfg, fused, predictors)
    report['fp32']['pytorch_metric'] = metrics['pytorch']
    for key in ('fp32', 'int8'):
        if key in metrics:
            report[key]['metric'] = metrics[key]


def coreml_section(fused: nn.Module, example: torch.Tensor, work_dir: str,
                   evaluate_fn: Optional[Callable[[nn.Module],
                                                  Dict[str, float]]],
                   verbose: bool,
                   calibration: Optional[Sequence] = None) -> dict:
    """``coreml_compress.compress_coreml`` (fp16, w8, w6, w4, a8w8 on
    ``calibration``), or why not. Imported here only: it needs coremltools,
    an optional dependency."""
    try:
        from mobileone_mm.deploy.quantization.coreml_compress import compress_coreml
        _log(verbose, 'Core ML: converting and compressing (fp32, fp16, '
             'w8, w6, w4, a8w8)')
        return compress_coreml(copy.deepcopy(fused), example,
                               osp.join(work_dir, 'coreml'),
                               evaluate=evaluate_fn, calibration=calibration)
    except (ImportError, UserError) as err:
        if verbose:
            print(f'warning: Core ML compression skipped: {err}',
                  file=sys.stderr, flush=True)
        return dict(skipped=f'Core ML compression unavailable: {err}')


def _coreml(o: QuantizeOptions, cfg: Config, fused: nn.Module,
            example: torch.Tensor, work_dir: str, checkpoint: Optional[str],
            verbose: bool, calibrate_quietly: bool = False) -> dict:
    """The Core ML section; with ``--eval`` its metrics come from our
    PyTorch evaluation of the module ``compress_coreml`` hands back (the
    fused model with the compressed weights). The 8-bit activations are
    calibrated on the images ONNX Runtime calibrates on (the same draw; the
    random-input warning is printed once)."""
    def evaluate_module(module: nn.Module) -> Dict[str, float]:
        return evaluate(cfg, module,
                        dict(pytorch=torch_predictor(module)))['pytorch']

    batches, calib = calibration_data(
        cfg, fused, o.calib_split, o.calib_images, example.shape, checkpoint,
        verbose and not calibrate_quietly)
    section = coreml_section(fused, example, work_dir,
                             evaluate_module if o.evaluate else None,
                             verbose, batches)
    if isinstance(section.get('a8w8'), dict) and \
            'skipped' not in section['a8w8']:
        section['a8w8']['calibration'] = calib
    return section


def _no_eval(report: dict) -> None:
    for key in ('fp32', 'int8'):
        if report[key].get('metric') is None:
            report[key]['metric_note'] = NO_EVAL
    report['fp32'].setdefault('pytorch_metric', None)


def quantize_config(config: Union[str, Config],
                    checkpoint: Optional[str] = None,
                    work_dir: Optional[str] = None,
                    options: Optional[QuantizeOptions] = None,
                    cfg_options: Optional[dict] = None,
                    verbose: bool = True) -> dict:
    """Quantize, measure and report a config's model; see the module doc.

    Args:
        config: Config path (or a loaded ``mmengine.Config``, not changed).
        checkpoint: Trained weights (unfused or fused), loaded strictly;
            ``None``: random weights (latency only), announced.
        work_dir: Output folder (default ``work_dirs/quantize/<config>``).
        options: :class:`QuantizeOptions` (default: all defaults).
        cfg_options: Overrides merged into the config.
        verbose: Progress on stdout, warnings on stderr.

    Returns:
        The report, also written to ``work_dir/quant_report.json``.

    Raises:
        UserError: Bad input: unknown config, unreadable checkpoint or one
            of another variant, missing data (with a checkpoint or
            ``--eval``), an output path that would overwrite an input.
    """
    o = options or QuantizeOptions()
    cfg, name = config_and_name(config, cfg_options)
    for backend in o.backends:
        get_backend(backend).require()
    work_dir = work_dir or osp.join(
        'work_dirs', 'quantize', osp.splitext(osp.basename(name))[0])
    _protect_inputs([checkpoint, name], work_dir)
    shape = input_shape_from_config(cfg)
    if o.evaluate:  # missing test data: say so before the long part
        build_test_loader(cfg)

    def log(msg: str) -> None:
        _log(verbose, msg)

    model, notes = build_for_deploy(cfg, checkpoint, shape, verbose)
    log(f'fusing {type(model).__name__} (reparameterize)')
    fused = reparameterize(model).eval()
    os.makedirs(work_dir, exist_ok=True)
    example = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    # every quantizer the backends have, requested or said to be skipped
    run = {b: b in o.backends for b in QUANT_BACKENDS}
    if run['onnxruntime']:
        report, sessions = _onnxruntime(o, cfg, fused, example, work_dir,
                                        checkpoint, log, verbose)
    else:
        sessions = {}
        report = dict(skipped_onnxruntime('onnxruntime not requested '
                                          '(--backend)'),
                      calibration=dict(source=None, split=None, images=0,
                                       method=o.method,
                                       per_channel=o.per_channel))
    if o.evaluate:
        _evaluate(cfg, fused, example, report, sessions, log)
    _no_eval(report)
    report['fp32']['model'] = dict(config=name, checkpoint=checkpoint,
                                   input_shape=list(shape), notes=notes)
    report['coreml'] = _coreml(
        o, cfg, fused, example, work_dir, checkpoint, verbose,
        calibrate_quietly=run['onnxruntime']) if run['coreml'] else \
        dict(skipped='coreml not requested (--backend)')
    report['machine'] = machine()
    report = {key: report[key] for key in REPORT_KEYS}
    write_quant_report(report, work_dir)
    return report

