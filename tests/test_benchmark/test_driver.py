"""tools/analysis/benchmark.py in --quick mode (``run``): sane JSON, goals
computed from the measurements, both process modes, the printed report and
the tool's one-line errors."""
import os
from importlib.metadata import version

import pytest
import torch
from scipy.stats import spearmanr

from mobileone_mm.benchmark import format_report, run, stats, zoo

from .conftest import load_tool


def test_quick_run_writes_sane_json(quick):
    _, report = quick
    models = report['models']
    assert list(models) == list(zoo.QUICK_MODELS)
    assert report['input_shape'] == [1, 3, 224, 224] and report['runs'] == 2
    # the official classifier's figures (ml-mobileone): 2.078 M params, 275 M MACs
    fused, train = models['mobileone_s0_fused'], models['mobileone_s0']
    assert fused['params'] == pytest.approx(2.078e6, rel=1e-3)
    assert fused['macs'] == pytest.approx(275.1e6, rel=0.01)
    assert train['macs'] > 3 * fused['macs'] and train['params'] > fused['params']
    assert models['mobilenet_v2_1.0']['params'] == pytest.approx(3.5e6, rel=0.02)
    for name, row in models.items():
        assert row['paper_top1'] == zoo.PAPER_TOP1[name.replace('_fused', '')]
        assert row['onnxruntime_max_rel_diff'] < 1e-5
        assert set(row['latency_ms']) == {'torch', 'onnxruntime'}
        for lat in row['latency_ms'].values():
            assert 0 < lat['min'] <= lat['median'] <= lat['p90'] and lat['runs'] == 2
    for backend in ('torch', 'onnxruntime'):
        s = report['spearman'][backend]
        assert s['models'] == 3
        assert -1 <= s['macs']['corr'] <= 1 and -1 <= s['params']['corr'] <= 1
        # the correlations are those of the rows' own minimum latencies
        lat = [r['latency_ms'][backend]['min'] for r in models.values()]
        for key in ('macs', 'params'):
            expected = spearmanr(lat, [r[key] for r in models.values()])[0]
            assert s[key]['corr'] == pytest.approx(expected)
    assert report['machine']['cores'] >= 1 and report['machine']['torch']
    assert report['machine']['cores'] == os.cpu_count()
    assert report['machine']['torch'] == version('torch')
    assert report['machine']['torch_threads'] == 1  # --threads 1
    assert report['threads'] == 1


def test_goals_are_the_measured_ratios(quick):
    _, report = quick
    lat = {n: {b: v['min'] for b, v in r['latency_ms'].items()}
           for n, r in report['models'].items()}
    expected = [lat['mobileone_s0_fused']['torch'] / lat['mobilenet_v2_1.0']['torch'],
                lat['mobileone_s0']['torch'] / lat['mobileone_s0_fused']['torch'],
                lat['mobileone_s0_fused']['torch'] / lat['mobileone_s0_fused']['onnxruntime']]
    goals = report['goals']
    assert [g['ratio'] for g in goals] == pytest.approx(expected)
    assert [g['status'] for g in goals] == [
        'PASS' if expected[0] <= 0.5 else 'FAIL',
        'PASS' if expected[1] >= 5 else 'FAIL',
        'PASS' if expected[2] >= 2 else 'FAIL']


def test_format_report_prints_every_figure(quick):
    _, report = quick
    text = format_report(report)
    lines = text.splitlines()
    assert lines[0].startswith(f"machine: {report['machine']['cpu']}")
    for name, row in report['models'].items():
        line = next(line for line in lines if line.startswith(name + ' '))
        assert f"{row['params'] / 1e6:.2f}" in line
        assert f"{row['latency_ms']['torch']['min']:.2f}" in line
        assert f"{row['latency_ms']['onnxruntime']['min']:.2f}" in line
    assert sum(line.startswith('Spearman (Table 1a)') for line in lines) == 2
    assert sum(line.startswith('  Table 3 ') for line in lines) == len(
        report['ablation']['table3'])
    goal_lines = [line for line in lines if line.startswith('goal: ')]
    assert [line.rsplit('-> ', 1)[1] for line in goal_lines] == [
        g['status'] for g in report['goals']]
    assert lines[-1] == f"plot: {report['plot']}"


def test_isolated_and_in_process_modes(quick, tmp_path):
    _, report = quick  # --in-process: every model in this process
    assert report['isolate'] is False and 'alternating' in report['protocol']
    assert 'all models in one process' in report['protocol']
    threads = torch.get_num_threads()
    try:  # the CLI's default: one fresh process per model
        isolated = run(['mobileone_s0_fused', 'mobilenet_v2_1.0'], runs=3,
                     out_dir=str(tmp_path), threads=1, isolate=True,
                     log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    assert isolated['isolate'] is True and 'own fresh process' in isolated['protocol']
    assert (tmp_path / 'benchmark.json').is_file()
    for row in isolated['models'].values():
        assert set(row['latency_ms']) == {'torch', 'onnxruntime'}
        assert all(lat['runs'] == 3 for lat in row['latency_ms'].values())
    # the same models give the same params and MACs either way
    for name in isolated['models']:
        assert isolated['models'][name]['params'] == report['models'][name]['params']
        assert isolated['models'][name]['macs'] == report['models'][name]['macs']
    # two models: too few for a correlation, reported as such
    assert isolated['spearman']['torch']['models'] == 2
    assert 'corr' not in str(isolated['spearman'])
    assert 'ablation' not in isolated


def test_unknown_model_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        load_tool().main(['--models', 'resnet50', '--out-dir', str(tmp_path)])
    assert 'unknown model(s) resnet50' in str(err.value)
    assert str(err.value).startswith('error: ') and '\n' not in str(err.value)
    assert not (tmp_path / 'benchmark.json').exists()


def test_negative_threads_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit) as err:
        load_tool().main(['--quick', '--threads', '-1', '--out-dir', str(tmp_path)])
    assert '--threads must be 0' in str(err.value)
    assert str(err.value).startswith('error: ')


@pytest.mark.parametrize('runs', ['0', '-3'])
def test_runs_below_one_is_a_one_line_error(tmp_path, runs):
    with pytest.raises(SystemExit) as err:
        load_tool().main(['--quick', '--runs', runs, '--out-dir', str(tmp_path)])
    assert str(err.value) == 'error: --runs must be at least 1'


def test_goals_of_the_report_are_those_of_stats(quick):
    _, report = quick
    assert report['goals'] == stats.goals(report['models'])
