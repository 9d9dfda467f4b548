"""Core ML compression of the fused network for ``tools/quantize.py
--backend coreml``: fp16, int8 weights, 6- and 4-bit palettes (and 8-bit
activations, :mod:`.coreml_a8w8`), each saved as an ``.mlpackage`` whose
size, compression ops and weights are read back from disk, and whose
accuracy is measured in PyTorch with the very weights the package holds
(Core ML predicts only on macOS).

coremltools does the work: conversion (:func:`.coreml.export_coreml`, the
deploy tool's own), ``linear_quantize_weights`` and ``palettize_weights``
(``coremltools.optimize.coreml``), decompression of each constexpr op
(``materialized_val_inference``, the step ``decompress_weights`` applies),
op counts (:func:`.coreml.coreml_ops`). Written here by hand, because
coremltools has no such thing: putting the decompressed weights back into
the PyTorch model (convs and linears matched in forward order, BN folded
first as coremltools folds it), the package's size on disk, and replacing a
package folder atomically.
"""
import contextlib
import copy
import os
import os.path as osp
import shutil
import tempfile
from typing import (Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

import numpy as np
import torch
import torch.nn as nn
from mmcv.cnn import fuse_conv_bn

from mobileone_mm.utils.atomic import replace_folder
from mobileone_mm.utils.errors import UserError
from ..compare import forward_tensors
from ..backends.coreml.program import (_load_spec, _quiet, coreml_ops, export_coreml,
                     import_coremltools)

__all__ = ['COMPRESSIONS', 'METRIC_SOURCE', 'VARIANTS', 'WEIGHT_THRESHOLD',
           'bn_folded', 'compress_coreml', 'load_package_weights',
           'package_layers', 'package_size_mb']

Evaluate = Callable[[nn.Module], Dict[str, float]]
Layers = List[Tuple[np.ndarray, Optional[np.ndarray]]]

# coremltools' own default: smaller weights (biases, most depthwise kernels
# of a small net) stay float16; they weigh little and compressing them saves
# almost nothing.
WEIGHT_THRESHOLD = 2048
# what each variant is, in coremltools' terms (recorded in the report)
COMPRESSIONS = {
    'w8': dict(api='linear_quantize_weights', mode='linear_symmetric',
               dtype='int8', granularity='per_channel'),
    # 'kmeans' (coremltools' default mode) needs scikit-learn, which this
    # stack does not install: 'uniform' spaces the 2**nbits LUT entries
    # evenly between the tensor's min and max
    'w6': dict(api='palettize_weights', nbits=6, mode='uniform',
               granularity='per_tensor'),
    'w4': dict(api='palettize_weights', nbits=4, mode='uniform',
               granularity='per_tensor'),
    # One palette per output channel (coremltools' per_grouped_channel with
    # groups of 1, which needs an iOS18 program): a fused MobileOne conv sums
    # its branches with their BN scales folded in, so its output channels'
    # ranges differ widely and one evenly spaced palette per tensor leaves
    # the small channels a level or two (the demo detector: bbox mAP 0.632
    # -> 0.123 at w6 and 0.008 at w4 per tensor; w6c 0.637 on the current
    # demo model, w4c still 0.148). The 2**nbits float16 entries of each
    # channel's palette are not free: w6c was larger than w8 there.
    'w6c': dict(api='palettize_weights', nbits=6, mode='uniform',
                granularity='per_grouped_channel', group_size=1,
                target='iOS18'),
    'w4c': dict(api='palettize_weights', nbits=4, mode='uniform',
                granularity='per_grouped_channel', group_size=1,
                target='iOS18'),
}
METRIC_SOURCE = ('pytorch with the decompressed Core ML weights (Core ML '
                 'cannot predict on Linux)')
A8W8_METRIC_SOURCE = ('pytorch: the calibrated int8 model that was converted '
                      '(same int8 weights and activation scales; float32 '
                      'between the quantize ops, Core ML computes float16)')
VARIANTS = ('fp32', 'fp16', 'w8', 'w6', 'w4', 'w6c', 'w4c', 'a8w8')
FP16_NOTE = ('fp16 weights (the package\'s, cast back to float32); '
             'activations stay float32 in this measurement, Core ML '
             'computes them in float16')
KMEANS_NOTE = ('w6/w4 palettes are uniform (evenly spaced LUT per tensor): '
               'coremltools\' k-means mode needs scikit-learn, which is not '
               'installed; k-means palettes usually fit a weight '
               'distribution better (not measured here)')
# the fp16 weights read back must be the fused PyTorch weights (BN folded)
# rounded to float16: one float16 step, relative to the tensor's largest
# value; more means the layers were matched wrongly
FP16_RTOL = 1e-3


def package_size_mb(path: str) -> float:
    """The sizes of the package's files added up (their bytes, as
    ``du -b`` counts them, not disk blocks), in MiB (2**20 bytes)."""
    total = sum(osp.getsize(osp.join(root, name))
                for root, _, names in os.walk(path) for name in names)
    return round(total / 2**20, 4)


def _weight_mb(path: str) -> float:
    """The package's weight blob alone (``weights/weight.bin``), in MiB."""
    blob = osp.join(path, 'Data', 'com.apple.CoreML', 'weights',
                    'weight.bin')
    return round(osp.getsize(blob) / 2**20, 4) if osp.isfile(blob) else 0.


def _check_target(path: str) -> None:
    """Refuse to replace something that is not a Core ML package (a user's
    file or folder that happens to sit at an output path)."""
    if osp.lexists(path) and not osp.isfile(osp.join(path, 'Manifest.json')):
        raise UserError(f'{path} exists and is not a Core ML package: move '
                        f'it away or choose another --work-dir')


def _publish(tmp: str, path: str) -> str:
    """Move the package folder ``tmp`` to ``path``, replacing an earlier
    package there; ``path`` never holds a half-written package."""
    _check_target(path)
    replace_folder(tmp, path)
    return path


@contextlib.contextmanager
def _staged(path: str) -> Iterator[str]:
    """A temporary name beside ``path`` to write a package to (coremltools
    insists on the ``.mlpackage`` extension); published to ``path`` when
    the block succeeds, removed when it fails."""
    folder, name = osp.split(path)
    tmp = osp.join(folder, f'.tmp{os.getpid()}-{name}')
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        _publish(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save(mlmodel, path: str) -> None:
    with _staged(path) as tmp, _quiet():
        mlmodel.save(tmp)


def _export(fused: nn.Module, example: torch.Tensor, precision: str,
            path: str) -> None:
    with _staged(path) as tmp:
        export_coreml(fused, example, tmp, precision)


def _load(path: str):
    ct = import_coremltools()
    with _quiet():
        return ct.models.MLModel(path, skip_model_load=True)


def _compress(mlmodel, name: str, threshold: int):
    """``mlmodel`` (an fp16 ML program) compressed as ``COMPRESSIONS[name]``
    by ``coremltools.optimize.coreml``."""
    import coremltools.optimize.coreml as cto
    how = COMPRESSIONS[name]
    if how['api'] == 'linear_quantize_weights':
        op = cto.OpLinearQuantizerConfig(
            mode=how['mode'], dtype=how['dtype'],
            granularity=how['granularity'], weight_threshold=threshold)
        compress = cto.linear_quantize_weights
    else:
        grouped = {k: how[k] for k in ('group_size', ) if k in how}
        op = cto.OpPalettizerConfig(
            nbits=how['nbits'], mode=how['mode'],
            granularity=how['granularity'], weight_threshold=threshold,
            **grouped)
        compress = cto.palettize_weights
    with _quiet():
        return compress(mlmodel, cto.OptimizationConfig(global_config=op))


def _value(var) -> np.ndarray:
    """A weight's float value: a constant's own, or a constexpr op's
    decompressed by coremltools (``materialized_val_inference``, what
    ``decompress_weights`` does to each such op)."""
    if var.val is not None:
        return np.asarray(var.val)
    op = var.op
    if op is None or not op.op_type.startswith('constexpr_'):
        raise RuntimeError(f'weight {var.name} is computed by '
                           f'{getattr(op, "op_type", None)}, not stored')
    return np.asarray(op.materialized_val_inference())


def package_layers(path: str) -> Dict[type, Layers]:
    """The saved package's ``conv`` and ``linear`` weights and biases as
    float arrays (compressed ones decompressed), in program order, keyed by
    the PyTorch layer type they come from.

    Read op by op rather than through ``decompress_weights``, which gives
    the same values (tested) but rebuilds and re-converts the whole model:
    seconds per package. :func:`.coreml.coreml_conv_weights` reads stored
    (uncompressed) conv weights only."""
    from coremltools.converters.mil.frontend.milproto.load import load
    spec, weights_dir = _load_spec(path)
    with _quiet():
        program = load(spec, spec.specificationVersion, weights_dir)
    kinds = {'conv': nn.Conv2d, 'linear': nn.Linear}
    out: Dict[type, Layers] = {k: [] for k in kinds.values()}
    for op in program.functions['main'].operations:
        if op.op_type in kinds:
            bias = op.inputs.get('bias')
            out[kinds[op.op_type]].append(
                (_value(op.weight), None if bias is None else _value(bias)))
    return out


def _called_layers(model: nn.Module, example: torch.Tensor,
                   kinds: Tuple[type, ...]) -> Dict[type, List[nn.Module]]:
    """The ``kinds`` modules of ``model`` in the order a forward pass calls
    them (the traced program's order; :func:`.coreml.torch_conv_weights`
    gives their weights, this the modules to write into)."""
    called: Dict[type, List[nn.Module]] = {k: [] for k in kinds}

    def hook(module, *_):
        called[next(k for k in kinds if isinstance(module, k))].append(module)

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, kinds)]
    try:
        forward_tensors(model.eval(), example)
    finally:
        for h in hooks:
            h.remove()
    return called


def bn_folded(fused: nn.Module) -> nn.Module:
    """A copy of ``fused`` with every BN that follows a conv folded into it
    (mmcv's ``fuse_conv_bn``), as coremltools folds it on conversion: its
    convs then correspond one to one to the program's."""
    return fuse_conv_bn(copy.deepcopy(fused)).eval()


def load_package_weights(reference: nn.Module, example: torch.Tensor,
                         path: str) -> Tuple[nn.Module, float]:
    """A copy of ``reference`` (BN already folded, :func:`bn_folded`) whose
    conv and linear weights and biases are the saved package's, decompressed
    to float; and the largest relative weight error against ``reference``
    (per layer ``max|w - w_ref| / max|w_ref|``).

    Raises:
        RuntimeError: The package's layers do not line up with the model's
            (other count or shapes).
    """
    module = copy.deepcopy(reference).eval()
    ours = package_layers(path)
    theirs = _called_layers(module, example, tuple(ours))
    worst = 0.
    for kind, layers in ours.items():
        mods = theirs[kind]
        shapes = [tuple(m.weight.shape) for m in mods]
        if [w.shape for w, _ in layers] != shapes:
            raise RuntimeError(
                f'{path}: its {len(layers)} {kind.__name__} weights do not '
                f'line up with the model\'s {len(mods)}')
        for (w, b), mod in zip(layers, mods):
            ref = mod.weight.detach()
            new = torch.from_numpy(w.astype(np.float32))
            worst = max(worst, float((new - ref).abs().max()
                                     / ref.abs().max().clamp_min(1e-12)))
            with torch.no_grad():
                mod.weight.copy_(new)
                if b is not None:
                    bias = torch.from_numpy(b.astype(np.float32))
                    if mod.bias is None:
                        mod.bias = nn.Parameter(bias)
                    else:
                        mod.bias.copy_(bias)
    return module, worst


def _compression_ops(path: str) -> Dict[str, int]:
    """The program's constexpr ops (one per compressed weight), its
    quantize/dequantize ops (8-bit activations) and its convs and linears
    (the layers that hold weights)."""
    return {k: v for k, v in coreml_ops(path).items()
            if k.startswith('constexpr_')
            or k in ('conv', 'linear', 'quantize', 'dequantize')}


def _entry(path: str, reference: nn.Module, example: torch.Tensor,
           evaluate: Optional[Evaluate], max_error: float = np.inf,
           **info) -> dict:
    """One variant's report entry, everything read back from ``path``;
    ``metric`` from ``evaluate`` of the model holding the package's
    weights. A weight error above ``max_error`` means the layers were
    matched wrongly: an error, before anything is evaluated."""
    module, error = load_package_weights(reference, example, path)
    if error > max_error:
        raise RuntimeError(
            f'{path}: its weights differ from the fused model\'s by '
            f'{error:.3g} (relative), more than {max_error:g}: the '
            f'program\'s layers do not match the model\'s')
    return dict(_package_info(path), max_rel_weight_error=error,
                metric=evaluate(module) if evaluate else None,
                metric_source=METRIC_SOURCE, **info)


def _package_info(path: str) -> dict:
    spec, _ = _load_spec(path)
    return dict(path=path, size_mb=package_size_mb(path),
                weight_mb=_weight_mb(path), ops=_compression_ops(path),
                specification_version=int(spec.specificationVersion))


def _a8w8(fused: nn.Module, example: torch.Tensor, path: str,
          reference: nn.Module, evaluate: Optional[Evaluate],
          calibration: Optional[Sequence], fp16_path: str) -> dict:
    """The 8-bit activation entry (:mod:`.coreml_a8w8`: PyTorch-side
    calibration, then conversion), or ``skipped`` with what failed."""
    from . import coreml_a8w8 as a8
    entry = dict(metric=None, coreml_route=a8.coreml_route_error(
        fp16_path, example) or 'not tried (macOS: it could calibrate)')
    images = list(calibration) if calibration is not None else [example]
    try:
        graph = a8.calibrated_a8w8(fused, example, images)
        with _staged(path) as tmp:
            a8.export_a8w8(graph, example, tmp)
    except UserError:
        raise
    except Exception as err:  # torch.fx or coremltools cannot: say what
        if osp.lexists(path):  # an earlier run's package is not this one
            shutil.rmtree(path)
        return dict(entry, skipped=f'coremltools.optimize.torch '
                    f'LinearQuantizer: {type(err).__name__}: {err}')
    _, error = load_package_weights(reference, example, path)
    return dict(entry, **_package_info(path), max_rel_weight_error=error,
                metric=a8.a8w8_metric(graph, fused, example, evaluate),
                metric_source=A8W8_METRIC_SOURCE,
                compression=dict(
                    api='coremltools.optimize.torch LinearQuantizer '
                        '(calibration only), then ct.convert',
                    target=a8.A8W8_TARGET, **a8.QUANTIZER_CONFIG[
                        'global_config'],
                    calibration_images=len(images) if calibration is not None
                    else '1 (the example input; no calibration given)'))


def compress_coreml(fused: nn.Module, example: torch.Tensor, out_dir: str,
                    evaluate: Optional[Evaluate] = None,
                    weight_threshold: int = WEIGHT_THRESHOLD,
                    calibration: Optional[Sequence] = None) -> dict:
    """Convert the fused network to Core ML and compress it.

    Writes ``out_dir/model_{fp32,fp16,w8,w6,w4,w6c,w4c,a8w8}.mlpackage`` (each
    first under a temporary name; an earlier package of that name is
    replaced, anything else there is refused). The fp32 package is the size
    reference; w8/w6/w4 compress the fp16 program (what ships: its
    uncompressed small weights stay float16); a8w8 is
    :mod:`.coreml_a8w8`'s.

    Args:
        fused: The fused model (an OpenMMLab model runs with
            ``mode='tensor'``: the network without post-processing).
        example: An input of the deploy shape.
        out_dir: Output folder (made if missing).
        evaluate: Called with a copy of ``fused`` holding each package's
            weights (decompressed), returns that model's metrics; ``None``:
            ``metric`` is ``None``.
        weight_threshold: Weights with fewer elements stay uncompressed in
            w8/w6/w4 (coremltools' ``weight_threshold``).
        calibration: Preprocessed input batches the a8w8 activation ranges
            are taken from (default: ``example`` alone).

    Returns:
        A dict with one entry per package (``fp32``, ``fp16``, ``w8``,
        ``w6``, ``w4``, ``w6c``, ``w4c``, ``a8w8``), each a dict of ``path``,
        ``size_mb``, ``weight_mb``, ``ops``, ``max_rel_weight_error``,
        ``metric``, ``metric_source`` and more, and ``note`` (a string);
        ``a8w8`` holds ``skipped`` instead when it could not be made.

    Raises:
        UserError: coremltools missing, or an output path holds something
            that is not a Core ML package.
        RuntimeError: The packages' weights do not line up with the model's.
    """
    try:
        import_coremltools()
    except UserError as err:
        raise UserError(f'Core ML compression needs coremltools '
                        f'({err.__context__ or err}): pip install '
                        f'"mobileone_mm[deploy]", or pass --backend '
                        f'onnxruntime') from err
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: osp.join(out_dir, f'model_{k}.mlpackage') for k in VARIANTS}
    for path in paths.values():
        _check_target(path)
    fused = fused.eval()
    for precision in ('fp32', 'fp16'):
        _export(fused, example, precision, paths[precision])
    sources = {'iOS15': _load(paths['fp16'])}
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        for name, how in COMPRESSIONS.items():
            target = how.get('target', 'iOS15')
            if target not in sources:  # the fp16 program at a newer target
                source = osp.join(tmp, f'fp16_{target}.mlpackage')
                export_coreml(fused, example, source, 'fp16', target)
                sources[target] = _load(source)
            _save(_compress(sources[target], name, weight_threshold),
                  paths[name])
    reference = bn_folded(fused)
    report = {'fp32': dict(
        path=paths['fp32'], size_mb=package_size_mb(paths['fp32']),
        weight_mb=_weight_mb(paths['fp32']), metric=None,
        metric_note='the fused PyTorch model itself: see fp32.pytorch_metric')}
    report['fp16'] = _entry(paths['fp16'], reference, example, evaluate,
                            compression=dict(api='ct.convert',
                                             compute_precision='FLOAT16'),
                            note=FP16_NOTE, max_error=FP16_RTOL)
    for name, how in COMPRESSIONS.items():
        report[name] = _entry(paths[name], reference, example, evaluate,
                              compression=dict(
                                  how, weight_threshold=weight_threshold))
    report['a8w8'] = _a8w8(fused, example, paths['a8w8'], reference,
                           evaluate, calibration, paths['fp16'])
    report['note'] = KMEANS_NOTE
    return report
