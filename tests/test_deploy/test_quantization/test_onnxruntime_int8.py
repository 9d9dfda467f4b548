"""ONNX Runtime int8 (mobileone_mm/deploy/quantize.py): the QDQ graph really
holds int8 weights and quantized activations, the fp32 model is never
written, the options reach ONNX Runtime."""
import hashlib

import numpy as np
import onnx
import onnx.numpy_helper as nh
import pytest
import torch

from mobileone_mm.deploy.model_setup import calibrate_bn
from mobileone_mm.deploy.backends.onnxruntime import export_onnx, onnx_run, onnx_session
from mobileone_mm.deploy.quantization.onnxruntime_int8 import (count_quantized_ops,
                                          int8_initializers,
                                          preprocessed_path, quantize_onnx,
                                          runtime_ops)
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError

from .quant_cases import ARCH, snr_db

SHAPE = (1, 3, 64, 64)


def _batches(n=4, seed=0):
    gen = np.random.default_rng(seed)
    return [gen.standard_normal(SHAPE).astype(np.float32) for _ in range(n)]


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope='module')
def fp32(tmp_path_factory):
    torch.manual_seed(0)
    model = MobileOne(ARCH, out_indices=(3, ))
    calibrate_bn(model, SHAPE)
    model.switch_to_deploy()
    path = tmp_path_factory.mktemp('quant') / 'fp32.onnx'
    export_onnx(model.eval(), torch.rand(*SHAPE), str(path))
    return path


def _conv_weights(path):
    """Each Conv's weight input traced to the initializer behind it."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    traced = []
    for node in graph.node:
        if node.op_type == 'Conv':
            dq = producer[node.input[1]]
            traced.append((dq.op_type, inits[dq.input[0]], inits[dq.input[1]],
                           node))
    return traced


@pytest.mark.parametrize('per_channel', [True, False])
def test_int8_graph_has_qdq_and_int8_weights(fp32, tmp_path, per_channel):
    before = _digest(fp32)
    out = quantize_onnx(str(fp32), str(tmp_path / 'int8.onnx'), _batches(),
                        per_channel=per_channel)
    assert out == str(tmp_path / 'int8.onnx')
    assert _digest(fp32) == before, 'the fp32 model was written'
    ops = count_quantized_ops(out)
    assert ops['QuantizeLinear'] > 0 and ops['DequantizeLinear'] > 0
    assert count_quantized_ops(str(fp32)) == {}
    convs = _conv_weights(out)
    assert len(convs) == 9  # stem + 4 stages x (depthwise, pointwise)
    for op, weight, scale, node in convs:
        assert op == 'DequantizeLinear'
        assert weight.data_type == onnx.TensorProto.INT8
        out_channels = nh.to_array(weight).shape[0]
        assert nh.to_array(scale).size == (out_channels if per_channel
                                           else 1), node.name
    assert int8_initializers(out)['INT8'] >= sum(
        nh.to_array(w).size for _, w, _, _ in convs)
    assert (tmp_path / 'int8.preprocessed.onnx').is_file()


def test_onnxruntime_runs_every_conv_in_int8(fp32, tmp_path):
    """The graph ONNX Runtime runs: the fp32 model's 9 convs stay float,
    the int8 model's Q/DQ pairs around them are fused into 9 integer
    QLinearConv (on x86 with uint8 activations), none left in float."""
    def convs(ops):
        return {op: n for op, n in ops.items() if op.endswith('Conv')}

    assert sum(convs(runtime_ops(str(fp32))).values()) == 9
    assert not any('QLinear' in op for op in runtime_ops(str(fp32)))
    out = quantize_onnx(str(fp32), str(tmp_path / 'int8.onnx'), _batches())
    assert count_quantized_ops(out)['DequantizeLinear'] > 9  # in the file
    ops = runtime_ops(out)
    assert set(convs(ops)) <= {'QLinearConv', 'com.microsoft.QLinearConv'}
    assert sum(convs(ops).values()) == 9
    # only the graph's input and output cross between float and int8
    assert ops['QuantizeLinear'] <= 2 and ops['DequantizeLinear'] <= 2


def test_int8_outputs_follow_fp32(fp32, tmp_path):
    batches = _batches()
    out = quantize_onnx(str(fp32), str(tmp_path / 'int8.onnx'), batches)
    ref = onnx_run(onnx_session(str(fp32)), batches[0])[0]
    got = onnx_run(onnx_session(out), batches[0])[0]
    # int8 rounding, not garbage (measured ~30 dB on this tiny net)
    assert snr_db(got, ref) > 15
    assert not np.array_equal(got, ref), 'no quantization happened'


def _input_scale(path):
    graph = onnx.load(str(path)).graph
    node = next(n for n in graph.node if n.op_type == 'QuantizeLinear'
                and n.input[0] == 'input')
    inits = {i.name: nh.to_array(i) for i in graph.initializer}
    return float(inits[node.input[1]])


def _outlier_batches(n):
    batches = _batches(n)
    batches[0][0, 0, 0, 0] = 40.0  # one outlier in n * 12288 values
    return batches


def test_minmax_and_percentile_reach_onnxruntime(fp32, tmp_path):
    batches = _outlier_batches(20)
    scales = {m: _input_scale(quantize_onnx(
        str(fp32), str(tmp_path / f'{m}.onnx'), batches, method=m))
        for m in ('minmax', 'percentile')}
    # min-max: asymmetric [min, 40] over 255 steps
    assert scales['minmax'] == pytest.approx(
        (40.0 - min(b.min() for b in batches)) / 255, rel=1e-3)
    # percentile 99.999 of |x| drops the outlier: |x| of a normal, ~4.5
    assert scales['percentile'] < 0.3 * scales['minmax']


@pytest.mark.parametrize('bins,clips', [((128, 128), False),
                                        ((512, 256), True)])
def test_entropy_uses_our_bins(fp32, tmp_path, monkeypatch, bins, clips):
    """ONNX Runtime's default bins (128, 128) leave the KL search one
    candidate, the full range: entropy == min-max. With more histogram bins
    than quantized bins it clips the outlier (2048 in the tool; 512 here,
    for speed)."""
    import mobileone_mm.deploy.quantization.onnxruntime_int8 as quantize
    monkeypatch.setattr(quantize, 'ENTROPY_BINS', dict(
        num_bins=bins[0], num_quantized_bins=bins[1]))
    batches = _outlier_batches(2)
    minmax = _input_scale(quantize_onnx(str(fp32), str(tmp_path / 'm.onnx'),
                                        batches))
    entropy = _input_scale(quantize_onnx(str(fp32), str(tmp_path / 'e.onnx'),
                                         batches, method='entropy'))
    assert (tmp_path / 'e.calibration.json').is_file()
    if clips:
        assert entropy < 0.9 * minmax
    else:
        assert entropy == pytest.approx(minmax, rel=1e-3)


def test_refuses_to_overwrite_the_fp32_model(fp32, tmp_path):
    before = _digest(fp32)
    with pytest.raises(UserError, match='would overwrite'):
        quantize_onnx(str(fp32), str(fp32), _batches(1))
    assert _digest(fp32) == before
    # nor through the pre-processed model written beside the int8 one
    clash = tmp_path / 'm.preprocessed.onnx'
    clash.write_bytes(fp32.read_bytes())
    with pytest.raises(UserError, match='would overwrite'):
        quantize_onnx(str(clash), str(tmp_path / 'm.onnx'), _batches(1))
    assert _digest(clash) == before


@pytest.mark.parametrize('kwargs,match', [
    (dict(method='kl'), 'unknown calibration method'),
    (dict(calibration=[]), 'no calibration batch'),
])
def test_bad_options(fp32, tmp_path, kwargs, match):
    args = dict(fp32_path=str(fp32), int8_path=str(tmp_path / 'int8.onnx'),
                calibration=_batches(1))
    with pytest.raises(UserError, match=match):
        quantize_onnx(**dict(args, **kwargs))
    assert not (tmp_path / 'int8.onnx').exists()


def test_missing_model(tmp_path):
    with pytest.raises(UserError, match='fp32 model not found'):
        quantize_onnx(str(tmp_path / 'none.onnx'), str(tmp_path / 'i.onnx'),
                      _batches(1))


def test_preprocessed_path_sits_beside_the_int8_model():
    assert preprocessed_path('/w/m_int8.onnx') == \
        '/w/m_int8.preprocessed.onnx'
