"""Core ML compression (mobileone_mm/deploy/coreml_compress.py): the tiny
classifier of quant_cases (its convs and its linear head) converted and
compressed fp16 / w8 / w6 / w4 / a8w8, everything checked on what the saved
packages hold: size, compression ops, the decompressed weights against the
fp32 ones, and the PyTorch model the metric is computed on."""
import copy
import os
import platform

import numpy as np
import pytest
import torch
import torch.nn as nn

from mobileone_mm.deploy.quantization import coreml_compress as cc
from mobileone_mm.deploy.backends.coreml import coreml_conv_weights
from mobileone_mm.deploy.compare import forward_tensors
from mobileone_mm.utils.errors import UserError

from .quant_cases import CLS_CFG, cls_options, fused_model

# low enough that most of the tiny model's weights are compressed (its
# largest has 32 x 32 elements; coremltools' default is 2048)
THRESHOLD = 256
EVALUATED = ('fp16', 'w8', 'w6', 'w4', 'w6c', 'w4c', 'a8w8')


def _metric(module: nn.Module, x: torch.Tensor) -> dict:
    outs = forward_tensors(module, x)
    return {'mean_abs_output': float(sum(o.abs().mean() for o in outs))}


def _weights(module: nn.Module, x: torch.Tensor):
    """Conv and linear weights and biases in forward order."""
    called = []
    hooks = [m.register_forward_hook(lambda m, *_: called.append(m))
             for m in module.modules() if isinstance(m, (nn.Conv2d,
                                                         nn.Linear))]
    forward_tensors(module, x)
    for h in hooks:
        h.remove()
    return [(m.weight.detach().numpy().copy(),
             None if m.bias is None else m.bias.detach().numpy().copy())
            for m in called]


@pytest.fixture(scope='module')
def case(tmp_path_factory):
    """The tiny classifier, compressed once, with a recording evaluate."""
    _, fused, x = fused_model(CLS_CFG, cls_options())
    before = copy.deepcopy(fused.state_dict())
    seen = []

    def evaluate(module):
        seen.append(dict(kind=type(module).__name__, metric=_metric(module, x),
                         weights=_weights(module, x)))
        return seen[-1]['metric']

    out = tmp_path_factory.mktemp('coreml_compress')
    calibration = [torch.rand(x.shape, generator=torch.Generator()
                              .manual_seed(i)) for i in range(4)]
    report = cc.compress_coreml(fused, x, str(out), evaluate, THRESHOLD,
                                calibration)
    reference = _weights(cc.bn_folded(fused), x)
    return dict(fused=fused, x=x, before=before, seen=seen, out=out,
                report=report, reference=reference)


def _layers(path):
    layers = cc.package_layers(path)
    return layers[nn.Conv2d] + layers[nn.Linear]


def _compressed(w: np.ndarray) -> bool:
    return w.size > THRESHOLD


def test_packages_are_written_and_shrink_in_order(case):
    report, out = case['report'], case['out']
    assert set(report) == {*cc.VARIANTS, 'note'}
    for name in cc.VARIANTS:
        path = report[name]['path']
        assert path == str(out / f'model_{name}.mlpackage')
        assert os.path.isfile(os.path.join(path, 'Manifest.json'))
        assert report[name]['size_mb'] == cc.package_size_mb(path) > 0
    # no temporary folder left behind
    assert sorted(os.listdir(out)) == sorted(
        f'model_{n}.mlpackage' for n in cc.VARIANTS)
    weights = [report[n]['weight_mb'] for n in ('fp32', 'fp16', 'w8', 'w6',
                                                'w4')]
    assert weights == sorted(weights, reverse=True)
    assert len(set(weights)) == 5  # strictly smaller at every step
    assert 'uniform' in report['note'] and 'scikit-learn' in report['note']


def test_compression_ops_are_in_the_programs(case):
    report = case['report']
    n_layers = len(case['reference'])  # 9 convs + the linear head
    n_big = sum(_compressed(w) for w, _ in case['reference'])
    assert 0 < n_big < n_layers
    assert report['fp16']['ops'] == {'conv': 9, 'linear': 1}
    assert report['w8']['ops']['constexpr_affine_dequantize'] == n_big
    for name in ('w6', 'w4'):
        assert report[name]['ops']['constexpr_lut_to_dense'] == n_big
        assert 'constexpr_affine_dequantize' not in report[name]['ops']
    assert report['w8']['compression']['dtype'] == 'int8'
    assert report['w4']['compression']['mode'] == 'uniform'
    # constexpr ops need iOS16 (spec 7); quantize/dequantize iOS17 (spec 8)
    assert report['fp16']['specification_version'] == 6
    assert report['w4']['specification_version'] == 7
    a8 = report['a8w8']
    assert a8['specification_version'] == 8
    assert a8['ops']['quantize'] > 0 and a8['ops']['dequantize'] > 0
    assert a8['ops']['constexpr_affine_dequantize'] == n_layers


def test_fp16_weights_are_the_fp32_ones_rounded(case):
    ours = _layers(case['report']['fp16']['path'])
    assert len(ours) == len(case['reference'])
    for (w, b), (rw, rb) in zip(ours, case['reference']):
        assert w.dtype == np.float16
        np.testing.assert_array_equal(w, rw.astype(np.float16))
        np.testing.assert_array_equal(b, rb.astype(np.float16))


def _per_channel_max(w: np.ndarray) -> np.ndarray:
    return np.abs(w).reshape(len(w), -1).max(1).reshape(
        (-1, ) + (1, ) * (w.ndim - 1))


@pytest.mark.parametrize('name,bits', [('w8', 8), ('w6', 6), ('w4', 4),
                                       ('w6c', 6), ('w4c', 4)])
def test_decompressed_weights_within_one_quantization_step(case, name,
                                                           bits):
    """Each compressed weight is within half a quantization step of the fp32
    weight, plus what float16 arithmetic adds, and takes at most 2**bits
    values (per channel for w8 and the *c palettes); smaller weights are
    fp16.

    The bound, derived from coremltools' code (``compress_uniform`` of
    ``palettize_weights``; ``linear_quantize_weights``), which works on the
    program's float16 weights:

    * step: w8 ``max|w_c| / 127`` per output channel (symmetric int8);
      w6/w4 ``(max - min) / (2**bits - 1)`` over the tensor, the *c
      palettes the same per output channel (a uniform LUT from min to max).
    * round to nearest: ``step / 2``, if the index were computed exactly.
      It is computed in float16: ``t = (w - min) / (max - min) * (2**b - 1)``
      (w8: ``t = w / scale``) takes three (two) float16 roundings of
      relative size ``2**-11`` each, an absolute error in ``t`` of at most
      ``3 * (2**b - 1) * 2**-11`` (w8: ``2 * 127 * 2**-11``) steps, which can
      move a weight near a midpoint to the neighbouring level.
    * float16: the reference weights are rounded to float16 before
      quantizing, and the LUT entries (w8: the scales) are stored in float16:
      at most ``max|w| * 2**-11`` each, ``max|w| * 2**-10`` together.

    So ``|w_q - w| <= step * (1/2 + index_error) + max|w| * 2**-10``
    (measured, 2026-12-06: at most 0.507 steps beyond the float16 term).
    """
    ours = _layers(case['report'][name]['path'])
    changed = 0
    for (w, b), (rw, rb) in zip(ours, case['reference']):
        w = w.astype(np.float32)
        np.testing.assert_array_equal(b, rb.astype(np.float16))
        if not _compressed(rw):
            np.testing.assert_array_equal(w, rw.astype(np.float16))
            continue
        largest = np.abs(rw).max()
        if name == 'w8':
            step = _per_channel_max(rw) / 127
            index_error = 2 * 127 * 2**-11
            largest = _per_channel_max(rw)
            levels = max(len(np.unique(c)) for c in w.reshape(len(w), -1))
        elif name.endswith('c'):  # a palette per output channel
            flat = rw.reshape(len(rw), -1)
            step = ((flat.max(1) - flat.min(1)) / (2**bits - 1)).reshape(
                (-1, ) + (1, ) * (rw.ndim - 1))
            index_error = 3 * (2**bits - 1) * 2**-11
            largest = _per_channel_max(rw)
            levels = max(len(np.unique(c)) for c in w.reshape(len(w), -1))
        else:
            step = (rw.max() - rw.min()) / (2**bits - 1)
            index_error = 3 * (2**bits - 1) * 2**-11
            levels = len(np.unique(w))
        bound = step * (0.5 + index_error) + largest * 2**-10
        assert np.all(np.abs(w - rw) <= bound)
        assert levels <= 2**bits
        changed += not np.array_equal(w, rw.astype(np.float16))
    assert changed == sum(_compressed(rw) for rw, _ in case['reference'])
    # relative to the layer's max|w| (the report's measure): step <=
    # 2 max|w| / (2**b - 1) for a palette, max|w| / 127 for w8, so
    error = case['report'][name]['max_rel_weight_error']
    if name == 'w8':
        bound = (0.5 + 2 * 127 * 2**-11) / 127 + 2**-10
    else:
        bound = (1 + 2 * 3 * (2**bits - 1) * 2**-11) / (2**bits - 1) + 2**-10
    assert 1e-3 < error <= bound


def test_reading_equals_coremltools_decompress_weights(case, tmp_path):
    """package_layers reads each constexpr op as coremltools'
    decompress_weights rewrites it."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto
    path = case['report']['w4']['path']
    plain = str(tmp_path / 'plain.mlpackage')
    cto.decompress_weights(ct.models.MLModel(
        path, skip_model_load=True)).save(plain)
    theirs = coreml_conv_weights(plain)
    ours = cc.package_layers(path)[nn.Conv2d]
    assert len(ours) == len(theirs) == 9
    for (w, b), (tw, tb) in zip(ours, theirs):
        np.testing.assert_array_equal(w, tw)
        np.testing.assert_array_equal(b, tb)


def test_evaluate_gets_the_decompressed_weights(case):
    report, seen = case['report'], case['seen']
    assert [s['kind'] for s in seen] == ['ImageClassifier'] * 6 + [
        'QuantizedNetwork']
    for name, call in zip(EVALUATED, seen):
        assert report[name]['metric'] == call['metric']
        if name == 'a8w8':
            continue
        assert 'decompressed Core ML weights' in report[name]['metric_source']
        ours = _layers(report[name]['path'])
        assert len(call['weights']) == len(ours)
        for (w, b), (mw, mb) in zip(ours, call['weights']):
            np.testing.assert_array_equal(mw, w.astype(np.float32))
            np.testing.assert_array_equal(mb, b.astype(np.float32))
    assert report['fp32']['metric'] is None


def test_metric_is_computed_from_the_loaded_model(case):
    """The metric is the evaluate of a model with the package's weights:
    recomputed independently it is the same, and the 4-bit one differs
    from the fp16 one by no more than their outputs do. The metric here is
    sum_o mean|o| over the outputs, and ``|mean|a| - mean|b|| <= mean|a -
    b|`` (the triangle inequality), so the metrics of two models differ by
    at most sum_o mean|a_o - b_o| of their outputs: a bound computed from
    the two loaded models, with no tolerance picked by hand."""
    report, x = case['report'], case['x']
    reference = cc.bn_folded(case['fused'])
    module, error = cc.load_package_weights(reference, x,
                                            report['w4']['path'])
    assert error == report['w4']['max_rel_weight_error']
    assert _metric(module, x) == report['w4']['metric']
    half, _ = cc.load_package_weights(cc.bn_folded(case['fused']), x,
                                      report['fp16']['path'])
    assert _metric(half, x) == report['fp16']['metric']
    fp16 = report['fp16']['metric']['mean_abs_output']
    w4 = report['w4']['metric']['mean_abs_output']
    assert w4 != fp16
    apart = sum(float((a - b).abs().mean()) for a, b in
                zip(forward_tensors(module, x), forward_tensors(half, x)))
    assert 0 < abs(w4 - fp16) <= apart * (1 + 1e-5)


def test_a8w8_is_made_in_pytorch_and_says_why(case):
    a8 = case['report']['a8w8']
    assert 'skipped' not in a8
    assert a8['compression']['calibration_images'] == 4
    assert a8['compression']['activation_dtype'] == 'quint8'
    assert 'int8 model that was converted' in a8['metric_source']
    # int8 per output channel, symmetric, rounded to nearest in float32:
    # half a step of max|w_c| / 127, plus float16 storage in the package
    # (2**-11 of max|w| for the weight and for its scale)
    assert a8['max_rel_weight_error'] <= 0.5 / 127 + 2**-10
    if platform.system() != 'Darwin':
        assert a8['coreml_route'].endswith(
            'Exception: Model prediction is only supported on macOS '
            'version 10.13 or later.')


def test_the_fused_model_is_not_changed(case):
    after = case['fused'].state_dict()
    assert after.keys() == case['before'].keys()
    for key, value in case['before'].items():
        assert torch.equal(after[key], value), key


def test_an_earlier_package_is_replaced_whole(tmp_path):
    path = tmp_path / 'model_w8.mlpackage'
    path.mkdir()
    (path / 'Manifest.json').write_text('old')
    (path / 'stale').write_text('old')
    new = tmp_path / 'new.mlpackage'
    new.mkdir()
    (new / 'Manifest.json').write_text('new')
    cc._publish(str(new), str(path))
    assert sorted(os.listdir(path)) == ['Manifest.json']
    assert (path / 'Manifest.json').read_text() == 'new'
    assert sorted(os.listdir(tmp_path)) == ['model_w8.mlpackage']


def test_refuses_to_replace_what_is_not_a_package(tmp_path):
    user = tmp_path / 'model_w4.mlpackage'
    user.write_text('user data')
    with pytest.raises(UserError, match='not a Core ML package'):
        cc.compress_coreml(nn.Conv2d(3, 4, 1), torch.zeros(1, 3, 4, 4),
                           str(tmp_path))
    assert user.read_text() == 'user data'
    assert os.listdir(tmp_path) == ['model_w4.mlpackage']


def test_missing_coremltools_names_the_fix(no_coremltools, tmp_path):
    with pytest.raises(UserError, match='--backend onnxruntime'):
        cc.compress_coreml(nn.Conv2d(3, 4, 1), torch.zeros(1, 3, 4, 4),
                           str(tmp_path))
    assert not os.listdir(tmp_path)


def test_per_channel_palettes_fit_better_than_per_tensor(case):
    """The remedy for the fused convs' channel ranges: a palette per output
    channel (iOS18 program) has a smaller worst weight error than one per
    tensor at the same bits."""
    report = case['report']
    for bits in (6, 4):
        per_channel = report[f'w{bits}c']
        assert per_channel['compression']['granularity'] == \
            'per_grouped_channel'
        assert per_channel['ops'].get('constexpr_lut_to_dense', 0) > 0
        assert per_channel['specification_version'] >= 9  # iOS18
        assert per_channel['max_rel_weight_error'] < \
            report[f'w{bits}']['max_rel_weight_error']
