"""The per-model measurement: report rows, alternating timing, and the
worker-process protocol (failures reach the caller, named)."""
import functools
import multiprocessing

import pytest
import torch.nn as nn

from mobileone_mm.benchmark import workers, zoo
from mobileone_mm.deploy.complexity import count_macs, count_params

SHAPE = (1, 3, 16, 16)


def tiny_net(width: int = 4) -> nn.Module:
    """A small model to measure (module level: picklable for a worker)."""
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, 2))


def test_prepare_gives_the_row_and_a_runner_per_backend(tmp_path):
    model = tiny_net()
    row, runners = workers.prepare(model, SHAPE, str(tmp_path), 'tiny')
    assert row['params'] == count_params(model)
    assert row['macs'] == count_macs(model, SHAPE) > 0
    assert row['onnxruntime_max_rel_diff'] < 1e-5 and row['latency_ms'] == {}
    assert (tmp_path / 'tiny.onnx').is_file()
    assert set(runners) == {'torch', 'onnxruntime'}
    for run in runners.values():
        run()
    row, runners = workers.prepare(model, SHAPE, str(tmp_path), 'tiny2',
                                   backends=('torch', ), macs=False)
    assert row['macs'] is None and set(runners) == {'torch'}
    assert 'onnxruntime_max_abs_diff' not in row


def test_time_all_alternates_the_models_per_backend():
    calls = []
    runners = {name: {b: functools.partial(calls.append, (name, b))
                      for b in ('torch', 'onnxruntime')} for name in 'ab'}
    del runners['b']['onnxruntime']  # a model without one backend
    rows = {name: dict(latency_ms={}) for name in runners}
    workers.time_all(rows, runners, runs=4, log=lambda _: None)
    assert rows['a']['latency_ms']['torch']['runs'] == 4
    assert set(rows['a']['latency_ms']) == {'torch', 'onnxruntime'}
    assert set(rows['b']['latency_ms']) == {'torch'}
    torch_order = ''.join(n for n, b in calls if b == 'torch')
    assert torch_order == 'ab' + 'ab' * 4  # warm-up, then 4 blocks of one run
    assert ''.join(n for n, b in calls if b == 'onnxruntime') == 'a' * 5


def test_measure_models_in_process(tmp_path):
    builders = {f'tiny{w}': functools.partial(tiny_net, w) for w in (4, 8)}
    messages = []
    rows = workers.measure_models(builders, SHAPE, 2, str(tmp_path),
                                  threads=1, isolate=False, log=messages.append)
    assert list(rows) == ['tiny4', 'tiny8']
    assert rows['tiny8']['params'] > rows['tiny4']['params']
    for row in rows.values():
        assert {b: s['runs'] for b, s in row['latency_ms'].items()} == \
            {'torch': 2, 'onnxruntime': 2}
    assert 'timing 2 models in onnxruntime, 2 runs each ...' in messages


def test_model_process_reports_a_failure_with_the_model_name(tmp_path):
    # a model that cannot be built: the worker's traceback reaches the
    # caller, named, and no worker process is left behind
    with pytest.raises(RuntimeError, match=r'measuring bogus failed(.|\n)*KeyError'):
        workers.measure_models(
            {'bogus': functools.partial(zoo.build, 'no_such_model')},
            (1, 3, 32, 32), 2, str(tmp_path), threads=1, log=lambda _: None)
    assert multiprocessing.active_children() == []


def test_model_process_times_its_model_and_stops(tmp_path):
    proc = workers.ModelProcess('tiny', tiny_net, SHAPE, threads=1)
    try:
        assert proc.call() is None  # built
        times = proc.timer('torch')(3)
        assert len(times) == 3 and all(t > 0 for t in times)
        row = proc.call('prepare', 'tiny', str(tmp_path), False)
        assert row['macs'] is None and row['onnxruntime_max_rel_diff'] < 1e-5
        assert len(proc.timer('onnxruntime')(2)) == 2
    finally:
        proc.close()
    assert not proc.process.is_alive()


def test_in_process_measurement_gives_the_threads_back(tmp_path):
    """One thread for the measurement, the caller's afterwards: a leaked
    thread count changes every later float result of the process."""
    import torch
    import torch.nn as nn
    from mobileone_mm.benchmark import workers
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    torch.set_num_threads(other)
    try:
        workers.measure_models({'conv': lambda: nn.Conv2d(3, 4, 3)},
                               (1, 3, 16, 16), 2, str(tmp_path), threads=3,
                               macs=False, isolate=False,
                               log=lambda _: None)
        assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(before)
