"""The paper's timing protocol (mobileone_mm/deploy/latency.py)."""
import pytest
import torch
import torch.nn as nn

from mobileone_mm.deploy import latency


def test_latency_stats_in_milliseconds():
    stats = latency.latency_stats([0.003, 0.001, 0.002, 0.004])
    assert stats['min'] == pytest.approx(1.) and stats['runs'] == 4
    assert stats['median'] == pytest.approx(2.5)
    assert stats['min'] <= stats['median'] <= stats['p90'] <= 4.


def test_interleaved_latency_alternates_blocks():
    calls = []
    runners = {name: (lambda name=name: calls.append(name)) for name in 'ab'}
    stats = latency.interleaved_latency(runners, runs=7, rounds=3)
    # one warm-up each, then blocks of 3, 2, 2 runs, alternating
    assert ''.join(calls) == 'ab' + 'aaabbb' + 'aabb' + 'aabb'
    assert {k: v['runs'] for k, v in stats.items()} == {'a': 7, 'b': 7}
    assert all(0 <= v['min'] <= v['median'] <= v['p90'] for v in stats.values())
    # more rounds than runs: one run per block
    calls.clear()
    latency.interleaved_latency(runners, runs=2, rounds=10)
    assert ''.join(calls) == 'ab' + 'ab' + 'ab'


def test_interleaved_blocks_uses_the_timers_own_times():
    asked = []

    def timer(n):
        asked.append(n)
        return [0.001 * (len(asked))] * n

    stats = latency.interleaved_blocks({'x': timer}, runs=5, rounds=2)
    assert asked == [1, 3, 2]  # warm-up (discarded), then blocks of 3 and 2
    assert stats['x']['runs'] == 5
    assert stats['x']['min'] == pytest.approx(2.)  # the warm-up's 1 ms is not counted


def test_measure_latency_runs_once_then_the_timed_runs():
    calls = []
    stats = latency.measure_latency(lambda: calls.append(1), runs=4)
    assert len(calls) == 5 and stats['runs'] == 4


def test_time_runs_times_each_call():
    times = latency.time_runs(lambda: sum(range(1000)), 3)
    assert len(times) == 3 and all(t > 0 for t in times)


def test_torch_runner_and_latency_on_a_tiny_model():
    model = nn.Conv2d(3, 2, 1).train()
    seen = []
    model.register_forward_hook(
        lambda m, inputs, out: seen.append((tuple(inputs[0].shape),
                                            torch.is_inference_mode_enabled())))
    run = latency.torch_runner(model, (1, 3, 4, 4))
    assert not model.training
    run()
    assert seen == [((1, 3, 4, 4), True)]  # the given shape, inference mode
    assert not torch.is_inference_mode_enabled()
    stats = latency.torch_latency(model, (1, 3, 4, 4), runs=3)
    assert stats['runs'] == 3 and stats['min'] > 0 and len(seen) == 1 + 4
