"""Per-layer int8 SNR (mobileone_mm/deploy/quant_error.py)."""
import numpy as np
import onnx
import pytest
import torch

from mobileone_mm.deploy.model_setup import calibrate_bn
from mobileone_mm.deploy.backends.onnxruntime import export_onnx
from mobileone_mm.deploy.quantization.error import (folded_activations,
                                             per_layer_snr, refold,
                                             worst_layers)
from mobileone_mm.deploy.quantization.onnxruntime_int8 import preprocessed_path, quantize_onnx
from mobileone_mm.models import MobileOne

from .quant_cases import ARCH, snr_db

SHAPE = (1, 3, 64, 64)


@pytest.fixture(scope='module')
def quantized(tmp_path_factory):
    torch.manual_seed(0)
    model = MobileOne(ARCH, out_indices=(3, ))
    calibrate_bn(model, SHAPE)
    model.switch_to_deploy()
    root = tmp_path_factory.mktemp('snr')
    fp32 = str(root / 'fp32.onnx')
    export_onnx(model.eval(), torch.rand(*SHAPE), fp32)
    gen = np.random.default_rng(0)
    batches = [gen.random(SHAPE, dtype=np.float32) for _ in range(4)]
    int8 = quantize_onnx(fp32, str(root / 'int8.onnx'), batches)
    return preprocessed_path(int8), int8, batches


def test_every_quantized_tensor_has_its_snr(quantized):
    float_path, int8, batches = quantized
    report = per_layer_snr(float_path, int8, batches[:2], 'input')
    graph = onnx.load(float_path).graph
    weights = {n.input[1] for n in graph.node if n.op_type == 'Conv'}
    assert weights == set(report['weights'])
    # int32 biases: reported apart, not ranked among the layers
    assert {n.input[2] for n in graph.node if n.op_type == 'Conv'} == \
        set(report['biases'])
    relus = {n.output[0] for n in graph.node if n.op_type == 'Relu'}
    assert relus <= set(report['activations'])
    for name in weights:
        assert 25 < report['weights'][name] < 80, name  # 8-bit: ~40-50 dB
    for name in relus:
        # rounding noise alone: the ReLU the QDQ graph folded away is
        # applied before comparing (without it: ~2 dB)
        assert report['activations'][name]['qdq'] > 25, name
        assert report['activations'][name]['xmodel'] > 10, name


def test_worst_layers_are_the_lowest_and_named(quantized):
    float_path, int8, batches = quantized
    report = per_layer_snr(float_path, int8, batches[:1], 'input')
    worst = report['worst']
    assert len(worst) == 5
    assert [w['snr_db'] for w in worst] == sorted(w['snr_db'] for w in worst)
    every = [v for v in report['weights'].values() if v is not None] + [
        a['qdq'] for a in report['activations'].values()
        if a['qdq'] is not None]
    assert worst[0]['snr_db'] == min(every)
    nodes = {n.name for n in onnx.load(float_path).graph.node}
    assert all(w['layer'] in nodes for w in worst)


def test_folded_relus_are_found(quantized):
    float_path, int8, _ = quantized
    folded = folded_activations(float_path, int8)
    relus = [n.output[0] for n in onnx.load(float_path).graph.node
             if n.op_type == 'Relu']
    assert set(folded) == set(relus)  # ONNX Runtime removed every one
    x = np.array([-1.0, 2.0])
    assert folded[relus[0]](x).tolist() == [0.0, 2.0]


def test_refold_applies_the_activation_before_comparing():
    pre = np.array([-3.0, 1.0, 2.0])
    post = np.array([0.0, 1.0, 2.0])  # quantized ReLU output, exact here
    matched = {'t': {'pre_qdq': [pre], 'post_qdq': [post]}}
    fixed = refold(matched, {'t': lambda x: np.maximum(x, 0)})
    assert fixed['t']['pre_qdq'][0].tolist() == post.tolist()
    assert matched['t']['pre_qdq'][0] is pre  # the input is not changed
    assert snr_db(fixed['t']['pre_qdq'][0], post) > 100


def test_exact_tensors_are_null_and_skipped():
    worst = worst_layers({'w': None, 'v': 30.0},
                         {'a': {'qdq': 20.0, 'xmodel': 10.0}},
                         {'a': 'relu_node'}, n=5)
    assert [(w['tensor'], w['layer']) for w in worst] == [
        ('a', 'relu_node'), ('v', 'v')]


def test_unpaired_weights_are_collected_not_printed(capfd):
    """qdq_loss_debug logs a tensor it cannot pair as 'ERROR:root:Model
    Error'; the report keeps the message, the terminal does not show it."""
    import logging
    from mobileone_mm.deploy.quantization import error as quant_error
    before = logging.getLogger().handlers[:]
    with quant_error._root_log_collected() as messages:
        logging.error("Model Error in 'x.onnx': weight tensor 'b0' not "
                      "found!")
    assert messages == ["Model Error in 'x.onnx': weight tensor 'b0' not "
                        "found!"]
    assert logging.getLogger().handlers == before
    assert 'Model Error' not in capfd.readouterr().err
