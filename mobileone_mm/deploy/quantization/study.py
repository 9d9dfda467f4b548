"""Does the fused MobileOne quantize? The int8 accuracy cost of a trained
model, measured for every calibration method and weight granularity in one
pass over its test set (``tools/analysis/quant_accuracy.py``).

The model is fused and exported to fp32 ONNX once (as ``tools/quantize.py``
does); it is then quantized with ONNX Runtime's static QDQ int8
(:func:`mobileone_mm.deploy.quantization.onnxruntime_int8.quantize_onnx`) once per variant:
weights per tensor or per output channel, ranges by min-max, entropy or
percentile calibration, all on the same calibration images (the config's
training images through its test pipeline). PyTorch (fused), ONNX Runtime
fp32 and every int8 model then see the same preprocessed test batches, and
the config's own evaluator scores each (:func:`mobileone_mm.deploy.evaluation.evaluate`), so the
drops below are differences of one evaluation, not of separate runs. The
per-layer SNR of the default variant (per channel, min-max) names the
layers that lose the most.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config

from mobileone_mm.apis import input_shape_from_config
from mobileone_mm.deploy.quantization.calibration import calibration_data
from mobileone_mm.deploy.model_setup import build_for_deploy
from mobileone_mm.deploy.backends.onnxruntime import export_onnx, onnx_session, require_onnx
from mobileone_mm.deploy.evaluation import (build_test_loader, evaluate,
                                          ort_predictor, primary_metric,
                                          torch_predictor)
from mobileone_mm.deploy.quantization.error import per_layer_snr
from mobileone_mm.deploy.quantization.pipeline import config_and_name
from mobileone_mm.deploy.quantization.onnxruntime_int8 import (METHODS, graph_input_name,
                                          preprocessed_path, quantize_onnx)
from mobileone_mm.deploy.fusion import reparameterize
from mobileone_mm.utils.atomic import write_json
from mobileone_mm.utils.errors import UserError
from mobileone_mm.utils.machine import machine

__all__ = ['GRANULARITIES', 'RESULT_NAME', 'format_study', 'quant_study',
           'variant_name']

GRANULARITIES = ('per_tensor', 'per_channel')
RESULT_NAME = 'quant_accuracy.json'
DEFAULT_VARIANT = 'int8_per_channel_minmax'  # tools/quantize.py's default


def variant_name(granularity: str, method: str) -> str:
    """``'int8_<granularity>_<method>'``.

    Example:
        >>> variant_name('per_tensor', 'entropy')
        'int8_per_tensor_entropy'
    """
    return f'int8_{granularity}_{method}'


def _variants(granularities: Sequence[str],
              methods: Sequence[str]) -> List[Tuple[str, str]]:
    bad = [g for g in granularities if g not in GRANULARITIES] + \
        [m for m in methods if m not in METHODS]
    if bad:
        raise UserError(f'unknown {", ".join(bad)}: granularities '
                        f'{" ".join(GRANULARITIES)}, methods '
                        f'{" ".join(METHODS)}')
    return [(g, m) for g in granularities for m in methods]


def quant_study(config: Union[str, Config], checkpoint: str, work_dir: str,
                granularities: Sequence[str] = GRANULARITIES,
                methods: Sequence[str] = METHODS, calib_images: int = 32,
                calib_split: str = 'train', snr_images: int = 4,
                cfg_options: Optional[dict] = None,
                verbose: bool = True) -> dict:
    """Measure the int8 drop of ``config``'s trained model for every
    (granularity, method) variant; see the module doc.

    Args:
        config: Config path or loaded config (not changed).
        checkpoint: The trained weights (unfused or fused). Required: the
            accuracy of random weights means nothing.
        work_dir: Where the ONNX models and :data:`RESULT_NAME` go.
        granularities: Any of :data:`GRANULARITIES`.
        methods: Any of ``'minmax'``, ``'entropy'``, ``'percentile'``.
        calib_images: Calibration images from ``calib_split``.
        snr_images: Calibration images the per-layer SNR is taken on.
        cfg_options: Overrides merged into the config (data roots).
        verbose: Progress on stdout.

    Returns:
        A dict with the keys ``metric_key``, ``pytorch``, ``fp32``, ``int8``
        (per variant a dict of ``metric`` and ``drop``), ``worst_layers``,
        ``calibration``, ``model`` and ``machine``, also written to
        ``work_dir/quant_accuracy.json``.
    """
    if not checkpoint:
        raise UserError('the int8 accuracy study needs a trained checkpoint '
                        '(random weights have no accuracy to lose)')
    require_onnx()
    variants = _variants(granularities, methods)
    cfg, name = config_and_name(config, cfg_options)
    shape = input_shape_from_config(cfg)
    build_test_loader(cfg)  # missing test data: say so before the long part

    def log(msg: str) -> None:
        if verbose:
            print(f'[quant-accuracy] {msg}', flush=True)

    model, notes = build_for_deploy(cfg, checkpoint, shape, verbose)
    fused = reparameterize(model).eval()
    os.makedirs(work_dir, exist_ok=True)
    example = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    fp32 = export_onnx(fused, example, osp.join(work_dir, 'model_fp32.onnx'))
    batches, calib = calibration_data(cfg, fused, calib_split, calib_images,
                                      shape, checkpoint, verbose)
    paths: Dict[str, str] = {}
    for granularity, method in variants:
        key = variant_name(granularity, method)
        log(f'{key}: quantizing on {len(batches)} {calib_split} images')
        paths[key] = quantize_onnx(fp32, osp.join(work_dir, f'{key}.onnx'),
                                   batches, granularity == 'per_channel',
                                   method)
    predictors = dict(pytorch=torch_predictor(fused),
                      fp32=ort_predictor(onnx_session(fp32), fused, example))
    for key, path in paths.items():
        predictors[key] = ort_predictor(onnx_session(path), fused, example)
    log(f'evaluating the test set with {len(predictors)} models in one pass')
    metrics = evaluate(cfg, fused, predictors)
    metric_key = primary_metric(metrics['fp32'])
    base = metrics['fp32'][metric_key]
    result = dict(
        config=name, checkpoint=checkpoint, metric_key=metric_key,
        pytorch=metrics['pytorch'], fp32=metrics['fp32'],
        int8={key: dict(metric=metrics[key],
                        drop=None if metrics[key][metric_key] is None
                        else base - metrics[key][metric_key])
              for key in paths},
        calibration=dict(calib, images=len(batches)),
        model=dict(input_shape=list(shape), notes=notes),
        machine=machine())
    if DEFAULT_VARIANT in paths:
        path = paths[DEFAULT_VARIANT]
        snr = per_layer_snr(preprocessed_path(path), path,
                            batches[:snr_images], graph_input_name(fp32))
        result['worst_layers'] = {DEFAULT_VARIANT: snr.get('worst')}
    path = osp.join(work_dir, RESULT_NAME)
    write_json(path, result, allow_nan=False)
    return result


def format_study(result: dict) -> str:
    """The study as a terminal table: metric and drop per variant."""
    key = result['metric_key']
    fp32 = result['fp32'][key]
    lines = [f'{result["config"]}  ({key}, calibration: '
             f'{result["calibration"]["images"]} '
             f'{result["calibration"].get("split")} images)',
             f'  {"PyTorch (fused)":34s} {result["pytorch"][key]:.4f}',
             f'  {"ONNX Runtime fp32":34s} {fp32:.4f}']
    for name, row in result['int8'].items():
        value = row['metric'][key]
        drop = row['drop']
        lines.append(f'  {name:34s} {value:.4f}  (drop {drop:+.4f})'
                     if value is not None else f'  {name:34s} -')
    worst = (result.get('worst_layers') or {}).get(DEFAULT_VARIANT)
    if worst:
        lines.append(f'  worst layers ({DEFAULT_VARIANT}): {worst}')
    return '\n'.join(lines)
