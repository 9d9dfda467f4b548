"""Latency with the paper's protocol (Sec. 3.5): load, preallocate the
input, run once, then N timed runs; the minimum is the paper's figure."""
import contextlib
import functools
import time
from typing import Callable, Dict, Hashable, List, Sequence

import numpy as np
import torch
import torch.nn as nn


def latency_stats(times_s: Sequence[float]) -> Dict[str, float]:
    ms = np.asarray(times_s) * 1e3
    return dict(min=float(ms.min()), median=float(np.median(ms)),
                p90=float(np.percentile(ms, 90)), runs=int(ms.size))


def measure_latency(run: Callable[[], object], runs: int = 1000) -> Dict[str, float]:
    """The paper's protocol: the model is loaded and its input preallocated
    by the caller (``run`` closes over both); run once, then ``runs`` timed
    runs. The paper reports the minimum; median and p90 are given too."""
    return interleaved_latency({None: run}, runs, rounds=1)[None]


def time_runs(run: Callable[[], object], n: int) -> List[float]:
    """Seconds taken by each of ``n`` calls of ``run``."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def interleaved_blocks(timers: Dict[Hashable, Callable[[int], Sequence[float]]],
                       runs: int = 1000,
                       rounds: int = 10) -> Dict[Hashable, Dict[str, float]]:
    """``interleaved_latency`` for timers that run a whole block and return
    its times, ``timers[key](n) -> n times`` (e.g. a model in another
    process, timed there: no messaging inside the timed region). Each is
    run once untimed (``timers[key](1)``, discarded), then the ``runs``
    timed runs of every model are taken in ``rounds`` alternating blocks."""
    rounds = max(1, min(rounds, runs))
    blocks = [runs // rounds + (i < runs % rounds) for i in range(rounds)]
    for timer in timers.values():
        timer(1)
    times = {key: [] for key in timers}
    for block in blocks:
        for key, timer in timers.items():
            times[key].extend(timer(block))
    return {key: latency_stats(t) for key, t in times.items()}


def interleaved_latency(runners: Dict[Hashable, Callable[[], object]],
                        runs: int = 1000,
                        rounds: int = 10) -> Dict[Hashable, Dict[str, float]]:
    """The paper's protocol for several models compared with each other:
    each is run once, then the ``runs`` timed runs of every model are taken
    in ``rounds`` alternating blocks (model A's block, B's block, ..., then
    again). On a shared or throttling CPU the speed drifts over seconds; in
    blocks, every model sees the same slow and fast phases, so their ratios
    do not depend on which one happened to be timed in a fast phase."""
    return interleaved_blocks(
        {key: functools.partial(time_runs, run)
         for key, run in runners.items()}, runs, rounds)


@contextlib.contextmanager
def torch_threads(n: int):
    """PyTorch's intra-op threads set to ``n`` for the block, then put back
    (``n=0``: left as they are)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torch_runner(model: nn.Module,
                 input_shape: Sequence[int]) -> Callable[[], None]:
    """One inference of ``model`` on a preallocated random input."""
    model.eval()
    param = next(model.parameters())
    x = torch.rand(*input_shape, dtype=param.dtype, device=param.device)

    def run():
        with torch.inference_mode():
            model(x)
        if x.is_cuda:
            torch.cuda.synchronize()

    return run


def torch_latency(model: nn.Module, input_shape: Sequence[int],
                  runs: int = 1000) -> Dict[str, float]:
    return measure_latency(torch_runner(model, input_shape), runs)


def torch_section(timed: Dict[str, Dict]) -> dict:
    """The report's ``torch`` section from the deploy tool's timings of
    ``fused`` (and ``unfused``, when there is a train-time model): each
    ``{'latency_ms': stats, 'latency_ms_by_threads': {threads: stats}}``."""
    unfused = timed.get('unfused', {})
    by_threads = unfused.get('latency_ms_by_threads', {})
    return dict(
        latency_ms=dict(unfused=unfused.get('latency_ms'),
                        fused=timed['fused']['latency_ms']),
        latency_ms_by_threads={
            n: dict(unfused=by_threads.get(n), fused=stats)
            for n, stats in timed['fused']['latency_ms_by_threads'].items()})
