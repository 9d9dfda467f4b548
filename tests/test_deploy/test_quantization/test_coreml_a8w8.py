"""8-bit activations from the PyTorch side (mobileone_mm/deploy/
coreml_a8w8.py): the calibrated graph quantizes for real, stays close to the
fused model, behaves like it for evaluation (tensor and predict modes), and
a network torch.fx cannot trace is recorded as skipped, with the reason."""
import pytest
import torch
import torch.nn as nn
from mmpretrain.structures import DataSample

from mobileone_mm.deploy.quantization import coreml_a8w8 as a8
from mobileone_mm.deploy.compare import forward_tensors
from mobileone_mm.deploy.quantization.coreml_compress import compress_coreml

from .quant_cases import CLS_CFG, cls_options, fused_model


@pytest.fixture(scope='module')
def case():
    _, fused, x = fused_model(CLS_CFG, cls_options())
    batches = [torch.rand(x.shape, generator=torch.Generator().manual_seed(i))
               for i in range(4)]
    return fused, x, a8.calibrated_a8w8(fused, x, batches)


def test_graph_quantizes_activations_and_stays_close(case):
    """The graph quantizes every conv's output, and its output stays within
    3 % of the output scale of the fused model's. That bound is not derived
    (error propagation through 10 quantized layers depends on the weights):
    it is the measured 1.2 % (2026-12-06, this model and seed) with room
    for other CPUs' rounding; a graph that skipped the quantization would
    be equal (checked first), a broken one far off."""
    fused, x, graph = case
    code = graph.code
    assert code.count('quantize_per_tensor') >= 10  # every conv's output
    ours, ref = graph(x)[0], forward_tensors(fused, x)[0]
    assert not torch.equal(ours, ref)
    assert float((ours - ref).abs().max() / ref.abs().max()) < 0.03


def test_network_has_the_fused_models_interface(case):
    """Predict mode gives the fused model's kind of scores. The scores are
    softmax(logits), whose Jacobian diag(p) - p p^T has infinity norm
    max_i 2 p_i (1 - p_i) <= 1/2, so the scores differ by at most half the
    largest logit difference (mean value theorem): the bound is computed
    from the two networks' logits."""
    fused, x, graph = case
    net = a8.QuantizedNetwork(graph, fused, x).eval()
    assert net.data_preprocessor is fused.data_preprocessor
    torch.testing.assert_close(net(x, mode='tensor'), graph(x)[0])
    ours = net(x, [DataSample()], mode='predict')[0]
    with torch.no_grad():
        ref = fused(x, [DataSample()], mode='predict')[0]
    assert ours.pred_score.shape == ref.pred_score.shape == (10, )
    with torch.no_grad():
        logits = (net(x, mode='tensor') - fused(x, mode='tensor')).abs().max()
    assert 0 < float((ours.pred_score - ref.pred_score).abs().max()) \
        <= 0.5 * float(logits) + 1e-6
    with pytest.raises(ValueError, match='tensor and predict'):
        net(x, mode='loss')


def test_metric_only_with_evaluate(case):
    fused, x, graph = case
    assert a8.a8w8_metric(graph, fused, x, None) is None
    metric = a8.a8w8_metric(graph, fused, x,
                            lambda m: {'kind': type(m).__name__})
    assert metric == {'kind': 'QuantizedNetwork'}


class DataDependent(nn.Module):
    """torch.jit.trace takes one branch; torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        y = self.conv(x)
        return y.relu() if y.sum() > 0 else y


def test_untraceable_network_is_skipped_with_the_reason(tmp_path):
    torch.manual_seed(0)
    report = compress_coreml(DataDependent().eval(), torch.rand(1, 3, 8, 8),
                             str(tmp_path))
    assert 'TraceError' in report['a8w8']['skipped']
    assert report['a8w8']['coreml_route']
    assert not (tmp_path / 'model_a8w8.mlpackage').exists()
    assert report['w8']['size_mb'] > 0  # the rest is made all the same
