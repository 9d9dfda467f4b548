"""The 30-layer ablation net, its activations, and Tables 3 and 1b as
measured by the --quick run."""
import pytest
import torch
import torch.nn as nn

from mobileone_mm.benchmark import ablation


def test_ablation_tables(quick):
    _, report = quick
    ab = report['ablation']
    assert ab['input_shape'] == [1, 3, 64, 64]
    assert set(ab['table3']) == set(ablation.TABLE3)
    assert set(ab['table1b']) == {'baseline', '+se', '+se+skip'}
    for table in ('table3', 'table1b'):
        for row in ab[table].values():
            assert row['latency_ms']['torch']['min'] > 0
            assert row['latency_ms']['onnxruntime']['min'] > 0
            assert row['onnxruntime_max_rel_diff'] < 1e-5
            assert row['macs'] is None  # not counted for the ablation
    for act, paper in ablation.TABLE3.items():
        assert ab['table3'][act]['paper_iphone12_ms'] == paper
    # Table 1b's rows are the Table 3 nets they name, skip connections added last
    assert ab['table1b']['baseline'] == dict(ab['table3']['relu'], paper_iphone12_ms=1.53)
    assert ab['table1b']['+se'] == dict(ab['table3']['se_relu'], paper_iphone12_ms=2.10)
    assert ab['table1b']['+se+skip']['params'] == ab['table3']['se_relu']['params']


def test_skip_row_is_its_own_net(monkeypatch):
    """Table 1b's +se+skip row is measured on the SE-ReLU net with skip
    connections, once, and not copied from the SE-ReLU row of Table 3."""
    measured = {}

    def fake_measure(builders, *args, **kwargs):
        measured.update(builders)
        return {name: dict(params=i) for i, name in enumerate(builders)}

    monkeypatch.setattr(ablation, 'measure_models', fake_measure)
    out = ablation.run_ablation(1, 64, 'unused', isolate=False,
                                log=lambda msg: None)
    assert len(measured) == len(ablation.TABLE3) + 1  # one extra net
    skip_net = measured['net30_se_relu_skip']()
    assert sum(getattr(m, 'skip', False) for m in skip_net.modules()) == 25
    names = list(measured)
    assert out['table1b']['+se+skip']['params'] == names.index(
        'net30_se_relu_skip')
    assert out['table1b']['+se']['params'] == names.index('net30_se_relu')


def test_conv_net30_layout():
    net = ablation.conv_net30('relu', skip=True)
    layers = [m for m in net if isinstance(m, ablation.ConvLayer)]
    assert len(layers) == 30
    assert sum(m.skip for m in layers) == 25  # all but each stage's strided first
    assert [m.conv.out_channels for m in layers[::6]] == list(ablation.ABLATION_WIDTHS)
    assert [m.conv.stride[0] for m in layers[:7]] == [2, 1, 1, 1, 1, 1, 2]
    assert net(torch.rand(1, 3, 64, 64)).shape == (1, 1000)
    assert not any(m.skip for m in ablation.conv_net30('relu') if
                   isinstance(m, ablation.ConvLayer))


def test_conv_layer_skip_adds_the_input():
    layer = ablation.ConvLayer(4, 4, 1, 'relu', skip=True).eval()
    plain = ablation.ConvLayer(4, 4, 1, 'relu', skip=False).eval()
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(layer(x), x + plain(x))


@pytest.mark.parametrize('kind,cls', [('relu', nn.ReLU), ('gelu', nn.GELU),
                                      ('silu', nn.SiLU), ('se_relu', nn.Sequential),
                                      ('dynamic_relu_a', ablation.DynamicReLU),
                                      ('dynamic_relu_b', ablation.DynamicReLU)])
def test_make_activation_builds_each_table3_kind(kind, cls):
    assert kind in ablation.TABLE3
    act = ablation.make_activation(kind, 8)
    assert isinstance(act, cls)
    x = torch.randn(2, 8, 4, 4)
    assert act(x).shape == x.shape


def test_make_activation_unknown_kind_is_a_key_error():
    with pytest.raises(KeyError):
        ablation.make_activation('prelu', 8)


@pytest.mark.parametrize('kind', ['A', 'B'])
def test_dynamic_relu_starts_as_relu_and_adapts(kind):
    act = ablation.DynamicReLU(8, kind)
    x = torch.randn(2, 8, 5, 5)
    torch.nn.init.zeros_(act.fc[-1].weight)
    torch.nn.init.zeros_(act.fc[-1].bias)
    torch.testing.assert_close(act(x), torch.relu(x))
    torch.nn.init.normal_(act.fc[-1].bias)
    assert not torch.allclose(act(x), torch.relu(x))
    # 'A' predicts one set of coefficients, 'B' one per channel
    assert act.fc[-1].out_features == (4 if kind == 'A' else 4 * 8)
