"""tools/analysis/benchmark.py in --quick mode: sane JSON and PNG, goals
computed from the measurements, the hand-written DynamicReLU."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from mobileone_mm.deploy import benchmark
from mobileone_mm.deploy.latency import interleaved_latency

ROOT = Path(__file__).resolve().parents[2]


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_tool', ROOT / 'tools' / 'analysis' / 'benchmark.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench')
    threads = torch.get_num_threads()
    try:
        load_tool().main(['--quick', '--ablation', '--runs', '2', '--threads', '1',
                          '--out-dir', str(out)])
    finally:
        torch.set_num_threads(threads)
    return out, json.loads((out / 'benchmark.json').read_text())


def test_quick_run_writes_sane_json(quick):
    _, report = quick
    models = report['models']
    assert list(models) == list(benchmark.QUICK_MODELS)
    assert report['input_shape'] == [1, 3, 224, 224] and report['runs'] == 2
    # the official classifier's figures (ml-mobileone): 2.078 M params, 275 M MACs
    fused, train = models['mobileone_s0_fused'], models['mobileone_s0']
    assert fused['params'] == pytest.approx(2.078e6, rel=1e-3)
    assert fused['macs'] == pytest.approx(275.1e6, rel=0.01)
    assert train['macs'] > 3 * fused['macs'] and train['params'] > fused['params']
    assert models['mobilenet_v2_1.0']['params'] == pytest.approx(3.5e6, rel=0.02)
    for name, row in models.items():
        assert row['paper_top1'] == benchmark.PAPER_TOP1[name.replace('_fused', '')]
        assert row['onnx_max_rel_diff'] < 1e-5
        for lat in row['latency_ms'].values():
            assert 0 < lat['min'] <= lat['median'] <= lat['p90'] and lat['runs'] == 2
    for backend in ('torch', 'onnx'):
        s = report['spearman'][backend]
        assert s['models'] == 3
        assert -1 <= s['macs']['corr'] <= 1 and -1 <= s['params']['corr'] <= 1
    assert report['machine']['cores'] >= 1 and report['machine']['torch']
    assert report['machine']['torch_threads'] == 1  # --threads 1


def test_goals_are_the_measured_ratios(quick):
    _, report = quick
    lat = {n: {b: v['min'] for b, v in r['latency_ms'].items()}
           for n, r in report['models'].items()}
    expected = [lat['mobileone_s0_fused']['torch'] / lat['mobilenet_v2_1.0']['torch'],
                lat['mobileone_s0']['torch'] / lat['mobileone_s0_fused']['torch'],
                lat['mobileone_s0_fused']['torch'] / lat['mobileone_s0_fused']['onnx']]
    goals = report['goals']
    assert [g['ratio'] for g in goals] == pytest.approx(expected)
    assert [g['status'] for g in goals] == [
        'PASS' if expected[0] <= 0.5 else 'FAIL',
        'PASS' if expected[1] >= 5 else 'FAIL',
        'PASS' if expected[2] >= 2 else 'FAIL']


def test_goal_status_logic():
    def row(torch_ms, onnx_ms=None):
        lat = {'torch': {'min': torch_ms, 'median': 2 * torch_ms}}
        if onnx_ms is not None:
            lat['onnx'] = {'min': onnx_ms, 'median': 2 * onnx_ms}
        return {'latency_ms': lat}

    good = {'mobileone_s0': row(10.), 'mobileone_s0_fused': row(1., 0.4),
            'mobilenet_v2_1.0': row(2.5)}
    assert [g['status'] for g in benchmark.goals(good)] == ['PASS'] * 3
    assert [g['ratio_of_medians'] for g in benchmark.goals(good)] == \
        pytest.approx([0.4, 10., 2.5])
    bad = {'mobileone_s0': row(4.), 'mobileone_s0_fused': row(1., 0.9),
           'mobilenet_v2_1.0': row(1.5)}
    assert [g['status'] for g in benchmark.goals(bad)] == ['FAIL'] * 3
    assert benchmark.goals({})[0]['status'] == 'MISSING'


def test_png_and_ablation(quick):
    out, report = quick
    png = out / 'latency_vs_macs.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 10_000
    ab = report['ablation']
    assert ab['input_shape'] == [1, 3, 64, 64]
    assert set(ab['table3']) == set(benchmark.TABLE3)
    assert set(ab['table1b']) == {'baseline', '+se', '+se+skip'}
    for table in ('table3', 'table1b'):
        for row in ab[table].values():
            assert row['latency_ms']['torch']['min'] > 0
            assert row['latency_ms']['onnx']['min'] > 0
            assert row['onnx_max_rel_diff'] < 1e-5
    # Table 1b's rows are the Table 3 nets they name, skip connections added last
    assert ab['table1b']['baseline'] == dict(ab['table3']['relu'], paper_iphone12_ms=1.53)
    assert ab['table1b']['+se+skip']['params'] == ab['table3']['se_relu']['params']


def test_plot_labels_of_close_points_do_not_overlap():
    from matplotlib.transforms import Affine2D
    identity = Affine2D()  # data coordinates are pixels; 72 dpi: pixels are points
    points = [(0., 0., 'a' * 10), (5., 2., 'b' * 10), (200., 1., 'c' * 10)]
    out = {label: dy for _, _, label, dy in
           benchmark._label_offsets(points, identity, dpi=72., height=9.)}
    assert out['a' * 10] == 3  # lowest: its default place
    assert 2 + out['b' * 10] >= 0 + out['a' * 10] + 9  # moved above 'a'
    assert out['c' * 10] == 3  # far to the right: not moved


def test_conv_net30_layout():
    net = benchmark.conv_net30('relu', skip=True)
    layers = [m for m in net if isinstance(m, benchmark.ConvLayer)]
    assert len(layers) == 30
    assert sum(m.skip for m in layers) == 25  # all but each stage's strided first
    assert net(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize('kind', ['A', 'B'])
def test_dynamic_relu_starts_as_relu_and_adapts(kind):
    act = benchmark.DynamicReLU(8, kind)
    x = torch.randn(2, 8, 5, 5)
    torch.nn.init.zeros_(act.fc[-1].weight)
    torch.nn.init.zeros_(act.fc[-1].bias)
    torch.testing.assert_close(act(x), torch.relu(x))
    torch.nn.init.normal_(act.fc[-1].bias)
    assert not torch.allclose(act(x), torch.relu(x))


def test_unknown_model_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        load_tool().main(['--models', 'resnet50', '--out-dir', str(tmp_path)])
    assert 'unknown model(s) resnet50' in str(err.value)


def test_negative_threads_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit) as err:
        load_tool().main(['--quick', '--threads', '-1', '--out-dir', str(tmp_path)])
    assert '--threads must be 0' in str(err.value)


def test_interleaved_latency_alternates_blocks():
    calls = []
    runners = {name: (lambda name=name: calls.append(name)) for name in 'ab'}
    stats = interleaved_latency(runners, runs=7, rounds=3)
    # one warm-up each, then blocks of 3, 2, 2 runs, alternating
    assert ''.join(calls) == 'ab' + 'aaabbb' + 'aabb' + 'aabb'
    assert {k: v['runs'] for k, v in stats.items()} == {'a': 7, 'b': 7}
    assert all(0 <= v['min'] <= v['median'] <= v['p90'] for v in stats.values())
    # more rounds than runs: one run per block
    calls.clear()
    interleaved_latency(runners, runs=2, rounds=10)
    assert ''.join(calls) == 'ab' + 'ab' + 'ab'


def test_isolated_and_in_process_modes(quick, tmp_path):
    _, report = quick  # the CLI's default: one fresh process per model
    assert report['isolate'] is True and 'own fresh process' in report['protocol']
    threads = torch.get_num_threads()
    try:
        shared = benchmark.run(['mobileone_s0_fused', 'mobilenet_v2_1.0'], runs=3,
                               out_dir=str(tmp_path), input_size=64,
                               threads=1, isolate=False, log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    assert shared['isolate'] is False and 'alternating' in shared['protocol']
    for row in shared['models'].values():
        assert set(row['latency_ms']) == {'torch', 'onnx'}
        assert all(lat['runs'] == 3 for lat in row['latency_ms'].values())
    # the same models give the same params and MACs either way
    for name in shared['models']:
        assert shared['models'][name]['params'] == report['models'][name]['params']


def test_model_process_reports_a_failure_with_the_model_name(tmp_path):
    # a model that cannot be built: the worker's traceback reaches the
    # caller, named, and no worker process is left behind
    import multiprocessing
    with pytest.raises(RuntimeError, match=r'measuring bogus failed(.|\n)*KeyError'):
        benchmark.measure_models({'bogus': 'no_such_model'}, (1, 3, 32, 32), 2,
                                 str(tmp_path), threads=1, log=lambda _: None)
    assert multiprocessing.active_children() == []
