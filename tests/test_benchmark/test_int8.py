"""The int8 rows (``--int8``): the int8 model really is int8 where ONNX
Runtime runs it, fp32 and int8 are timed per thread count, the goal is the
ratio of the measured numbers, and the tool's errors are one line."""
import functools
import re

import numpy as np
import pytest
import torch

from mobileone_mm.benchmark import format_report, int8, run, stats, workers

from .conftest import load_tool
from .test_workers import tiny_net

SHAPE = (1, 3, 16, 16)


def lat(ms):
    return dict(min=ms, median=2 * ms, p90=3 * ms, runs=2)


def int8_row(**threads):
    """A report row whose int8 part has ``threads=(fp32_ms, int8_ms)``,
    e.g. ``int8_row(**{'1': (3., 2.)})``."""
    return dict(int8=dict(latency_ms={
        n: dict(fp32=lat(f), int8=lat(i)) for n, (f, i) in threads.items()}))


def test_int8_goal_is_the_ratio_of_the_given_times():
    rows = {'mobileone_s0_fused': int8_row(**{'2': (3., 2.5), '1': (6., 4.)}),
            'mobilenet_v2_1.0': int8_row(**{'1': (100., 1.)})}  # not the goal's
    goals = stats.int8_goals(rows)
    assert [g['threads'] for g in goals] == [1, 2]  # sorted by threads
    assert [g['ratio'] for g in goals] == pytest.approx([1.5, 1.2])
    assert [g['ratio_of_medians'] for g in goals] == pytest.approx([1.5, 1.2])
    assert [g['status'] for g in goals] == ['PASS', 'FAIL']  # 1.5 inclusive
    lines = [stats.int8_goal_line(g) for g in goals]
    assert lines[0].startswith('fused S0 int8 vs fp32 (ONNX Runtime): 1.50× '
                               'with 1 thread(s), goal ≥ 1.5×: met')
    assert lines[1].startswith('fused S0 int8 vs fp32 (ONNX Runtime): 1.20× '
                               'with 2 thread(s), goal ≥ 1.5×: NOT met')
    # int8 slower than fp32: a ratio below 1, reported as such
    slow = stats.int8_goals({'mobileone_s0_fused': int8_row(**{'1': (1., 2.)})})
    assert slow[0]['ratio'] == pytest.approx(0.5) and slow[0]['status'] == 'FAIL'
    assert stats.int8_goals({'mobilenet_v2_1.0': int8_row(**{'1': (2., 1.)})}) == []
    assert stats.int8_goals({'mobileone_s0_fused': {'latency_ms': {}}}) == []


def test_in_process_int8_rows_are_int8_where_onnxruntime_runs_them(tmp_path):
    # a tiny net under an int8 model's name gets int8 rows; 'tiny' does not
    builders = {'mobileone_s0_fused': tiny_net,
                'tiny': functools.partial(tiny_net, 8)}
    messages = []
    rows = workers.measure_models(builders, SHAPE, 3, str(tmp_path), threads=1,
                                  isolate=False, int8_threads=(1, 2),
                                  log=messages.append)
    assert 'int8' not in rows['tiny']
    info = rows['mobileone_s0_fused']['int8']
    # the file holds Q/DQ pairs, and ONNX Runtime fused them into integer
    # convolutions: the timed graph runs in int8, not in float between Q/DQ
    assert info['quantized_ops']['QuantizeLinear'] > 0
    assert info['quantized_ops']['DequantizeLinear'] > 0
    assert sum(n for op, n in info['runtime_ops'].items()
               if op.endswith('QLinearConv')) == 1
    assert not any(op in ('Conv', 'com.microsoft.nchwc.Conv')
                   for op in info['runtime_ops'])
    assert set(info['model_mb']) == {'fp32', 'int8'}
    assert 'random-normal' in info['quantization']['calibration']
    assert set(info['latency_ms']) == {'1', '2'}
    for per_threads in info['latency_ms'].values():
        assert {v: s['runs'] for v, s in per_threads.items()} == \
            {'fp32': 3, 'int8': 3}
    assert 'timing fp32 vs int8 in ONNX Runtime, 2 thread(s): 1 model(s), ' \
        '3 runs each ...' in messages


def test_int8_sessions_compute_the_model(tmp_path):
    torch.manual_seed(0)
    workers.prepare(tiny_net(), SHAPE, str(tmp_path), 'm', backends=('onnxruntime', ),
                    macs=False)
    info, runners = int8.prepare_int8(workers.onnx_path(str(tmp_path), 'm'),
                                      SHAPE, threads=(1, ))
    assert info['latency_ms'] == {}  # timed later, side by side
    assert set(runners) == {'fp32@1', 'int8@1'}
    fp32, q = (runners[k]()[0] for k in ('fp32@1', 'int8@1'))
    assert fp32.shape == q.shape == (1, 2) and np.isfinite(q).all()
    assert (tmp_path / 'm.int8.onnx').is_file()
    # the calibration batches are seeded random-normal NCHW batches
    batches = int8.calibration_batches(SHAPE)
    assert len(batches) == int8.CALIBRATION['batches']
    assert all(b.shape == SHAPE and b.dtype == np.float32 for b in batches)
    assert np.array_equal(batches[0], int8.calibration_batches(SHAPE)[0])


def test_isolated_int8_rows(tmp_path):
    rows = workers.measure_models({'mobilenet_v2_1.0': tiny_net}, SHAPE, 2,
                                  str(tmp_path), threads=1,
                                  int8_threads=(1, ), log=lambda _: None)
    info = rows['mobilenet_v2_1.0']['int8']
    assert info['quantized_ops']['QuantizeLinear'] > 0
    assert {v: s['runs'] for v, s in info['latency_ms']['1'].items()} == \
        {'fp32': 2, 'int8': 2}


def test_report_prints_the_int8_goal_from_its_numbers(tmp_path):
    threads = torch.get_num_threads()
    try:
        report = run(['mobileone_s0_fused'], runs=2, out_dir=str(tmp_path),
                     input_size=64, threads=1, isolate=False, int8=True,
                     int8_threads=(1, 2), log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    row = report['models']['mobileone_s0_fused']
    # all 43 convolutions of fused S0 (the stem, then 2 + 8 + 10 + 1 blocks
    # of depthwise + pointwise) run as integer convolutions, none in float
    ops = row['int8']['runtime_ops']
    assert sum(n for op, n in ops.items() if op.endswith('QLinearConv')) == 43
    assert not any(op.endswith('.Conv') or op == 'Conv' for op in ops)
    sizes = row['int8']['model_mb']
    assert sizes['int8'] < sizes['fp32'] / 3  # int8 weights
    assert report['int8']['threads'] == [1, 2]
    text = format_report(report)
    lines = [line for line in text.splitlines()
             if line.startswith('fused S0 int8 vs fp32')]
    assert len(lines) == 2
    for line, n in zip(lines, ('1', '2')):
        lat = row['int8']['latency_ms'][n]
        ratio = lat['fp32']['min'] / lat['int8']['min']
        assert f'{ratio:.2f}× with {n} thread(s)' in line
        assert line.split(': ')[2].startswith(
            'met' if ratio >= 1.5 else 'NOT met')
    assert 'random-normal' in text
    # what the int8 kernels depend on: the CPU's features, VNNI or not
    flags = report['machine']['cpu_flags']
    vnni = 'with' if any('vnni' in f for f in flags) else 'no'
    assert f"CPU features {' '.join(flags) or '-'} ({vnni} VNNI)" in text
    table = [line for line in text.splitlines()
             if re.match(r'mobileone_s0_fused +[12] ', line)]
    assert len(table) == 2


@pytest.mark.parametrize('argv,message', [
    (['--int8-threads', '1'], '--int8-threads needs --int8'),
    (['--int8', '--models', 'mobileone_s0'], 'add mobileone_s0_fused'),
    (['--int8', '--int8-threads', '0', '--models', 'mobileone_s0_fused'],
     '--int8-threads must be 1 or more'),
    (['--int8', '--training'], '--int8 does not apply to --training'),
])
def test_int8_argument_errors_are_one_line(tmp_path, argv, message):
    with pytest.raises(SystemExit) as err:
        load_tool().main(argv + ['--out-dir', str(tmp_path)])
    assert str(err.value).startswith('error: ') and message in str(err.value)
    assert '\n' not in str(err.value)
    assert not (tmp_path / 'benchmark.json').exists()
