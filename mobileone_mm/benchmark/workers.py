"""Measuring several models side by side: each model's report row (params,
MACs, ONNX export and its check) and its latency per backend, the models'
runs taken in alternating blocks (:func:`~mobileone_mm.deploy.latency.
interleaved_blocks`), each model in its own spawned process or all in this
one.

A model is given by a builder: a zero-argument callable that returns it,
picklable (a module-level function or a ``functools.partial`` of one) so
that a spawned process can build the model itself."""
import functools
import multiprocessing
import os
import traceback
from typing import Callable, Dict, Hashable, List, Sequence, Tuple

import torch
import torch.nn as nn

from mobileone_mm.deploy.complexity import count_macs, count_params
from mobileone_mm.deploy.backends import get_backend
from mobileone_mm.deploy.compare import compare_outputs, forward_tensors
from mobileone_mm.deploy.latency import (interleaved_blocks, time_runs,
                                         torch_runner)
from .int8 import (INT8_MODELS, VARIANTS, prepare_int8, session_key,
                   time_int8)

Builder = Callable[[], nn.Module]
Log = Callable[[str], None]
BACKENDS = ('torch', 'onnxruntime')


def onnx_path(work_dir: str, name: str) -> str:
    """Where :func:`prepare` exports model ``name``."""
    return os.path.join(work_dir, f'{name}.onnx')


def prepare(model: nn.Module, input_shape: Sequence[int], work_dir: str,
            name: str, backends: Sequence[str] = BACKENDS, macs: bool = True,
            threads: int = 0) -> Tuple[Dict, Dict[str, Callable[[], object]]]:
    """Params, MACs, each deploy backend's export and its check for one
    model (``backends``: ``'torch'`` and names of
    :mod:`mobileone_mm.deploy.backends`); returns the report row and one
    timing closure per backend (input preallocated)."""
    model.eval()
    row = dict(params=count_params(model),
               macs=count_macs(model, input_shape) if macs else None,
               latency_ms={})
    runners = {}
    torch.manual_seed(0)
    for key in backends:
        if key == 'torch':  # PyTorch eager: the model itself
            runners['torch'] = torch_runner(model, input_shape)
            continue
        backend = get_backend(key)
        path = backend.export(model, torch.rand(*input_shape),
                              onnx_path(work_dir, name)[:-len('.onnx')])
        # random weights: outputs can be large (summed train-time branches),
        # so the diff is also given relative to the largest output
        x = torch.rand(*input_shape)
        check = compare_outputs(backend.run(path, x),
                                forward_tensors(model, x))
        row[f'{key}_max_abs_diff'] = check['max_abs_diff']
        row[f'{key}_max_rel_diff'] = check['max_rel_diff']
        runners[key] = backend.runner(path, input_shape, threads)
    return row, runners


def _time_backend(timers: Dict[Hashable, Callable[[int], Sequence[float]]],
                  backend: str, runs: int, log: Log) -> Dict[Hashable, Dict]:
    log(f'timing {len(timers)} models in {backend}, {runs} runs each ...')
    return interleaved_blocks(timers, runs)


def time_all(rows: Dict[str, Dict], runners: Dict[str, Dict], runs: int,
             log: Log = print) -> None:
    """Latency of every model, one backend at a time, the models' runs in
    alternating blocks, so that the ratios of their times do not depend on
    the machine's drift; written to ``rows[name]['latency_ms'][backend]``."""
    backends = dict.fromkeys(b for r in runners.values() for b in r)
    for backend in backends:
        timers = {name: functools.partial(time_runs, r[backend])
                  for name, r in runners.items() if backend in r}
        for name, stats in _time_backend(timers, backend, runs, log).items():
            rows[name]['latency_ms'][backend] = stats


def _serve(conn, build: Builder, input_shape: Sequence[int],
           threads: int) -> None:
    """A worker process holding one model: built first and timed in
    PyTorch before anything else (MAC counting and the ONNX export trace
    the model, and their allocations change the memory allocator's state);
    then, on request, its MACs, ONNX export and ONNX Runtime session, and
    its int8 model with fp32 and int8 sessions per thread count.
    Commands: ``('time', backend, n)`` -> n run times (s), ``backend`` a
    key of the runners (``'torch'``, ``'onnxruntime'``, ``int8.session_key``);
    ``('prepare', name, work_dir, macs)`` -> the report row;
    ``('int8', name, work_dir, threads)`` -> the row's int8 part (after
    'prepare'); ``None``: stop.
    Every answer is ``(ok, value)``, a traceback when not ok."""
    try:
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = build().eval()
        runners = dict(torch=torch_runner(model, input_shape))
        conn.send((True, None))
        while (msg := conn.recv()) is not None:
            if msg[0] == 'time':
                answer = time_runs(runners[msg[1]], msg[2])
            elif msg[0] == 'int8':
                answer, int8 = prepare_int8(onnx_path(msg[2], msg[1]),
                                            input_shape, msg[3])
                runners.update(int8)
            else:
                answer, onnx = prepare(model, input_shape, msg[2], msg[1],
                                       backends=('onnxruntime', ), macs=msg[3],
                                       threads=threads)
                runners.update(onnx)
            conn.send((True, answer))
    except Exception:  # reported by the parent, with the model's name
        conn.send((False, traceback.format_exc()))
    finally:
        conn.close()


class ModelProcess:
    """One model in its own fresh (spawned) Python process; see ``_serve``."""

    def __init__(self, name: str, build: Builder, input_shape: Sequence[int],
                 threads: int) -> None:
        context = multiprocessing.get_context('spawn')
        self.name = name
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, build, tuple(input_shape), threads),
            daemon=True)
        self.process.start()
        child.close()

    def call(self, *msg):
        """Send ``msg`` (``()``: only wait until the model is built)."""
        if msg:
            self.conn.send(msg)
        try:
            ok, answer = self.conn.recv()
        except EOFError:
            ok, answer = False, (f'the process exited (code '
                                 f'{self.process.exitcode})')
        if not ok:
            raise RuntimeError(f'measuring {self.name} failed:\n{answer}')
        return answer

    def timer(self, backend: str) -> Callable[[int], List[float]]:
        return lambda n: self.call('time', backend, n)

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
        self.conn.close()


def _measure_in_process(builders: Dict[str, Builder],
                        input_shape: Sequence[int], runs: int, work_dir: str,
                        threads: int, macs: bool, int8_threads: Sequence[int],
                        log: Log) -> Dict[str, Dict]:
    rows, runners = {}, {}
    for name, build in builders.items():
        log(f'building and exporting {name} ...')
        torch.manual_seed(0)
        rows[name], runners[name] = prepare(build(), input_shape, work_dir,
                                            name, macs=macs, threads=threads)
    time_all(rows, runners, runs, log)
    int8_timers = {}
    for name in _int8_models(builders, int8_threads):
        log(f'quantizing {name} to int8 ...')
        rows[name]['int8'], int8 = prepare_int8(
            onnx_path(work_dir, name), input_shape, int8_threads)
        int8_timers[name] = {key: functools.partial(time_runs, run)
                             for key, run in int8.items()}
    _add_int8_latency(rows, int8_timers, int8_threads, runs, log)
    return rows


def _int8_models(names, int8_threads: Sequence[int]) -> List[str]:
    """The models of ``names`` that get int8 rows (none without
    ``int8_threads``)."""
    return [n for n in names if n in INT8_MODELS] if int8_threads else []


def _add_int8_latency(rows: Dict[str, Dict], timers: Dict[str, Dict],
                      int8_threads: Sequence[int], runs: int,
                      log: Log) -> None:
    if timers:
        for name, latency in time_int8(timers, int8_threads, runs,
                                       log).items():
            rows[name]['int8']['latency_ms'] = latency


def _measure_isolated(procs: Dict[str, ModelProcess], runs: int,
                      work_dir: str, macs: bool, int8_threads: Sequence[int],
                      log: Log) -> Dict[str, Dict]:
    for proc in procs.values():
        proc.call()  # built
    torch_stats = _time_backend(
        {name: p.timer('torch') for name, p in procs.items()}, 'torch', runs,
        log)
    rows = {}
    for name, proc in procs.items():
        log(f'exporting {name} ...')
        rows[name] = proc.call('prepare', name, work_dir, macs)
        rows[name]['latency_ms']['torch'] = torch_stats[name]
    onnx_stats = _time_backend(
        {name: p.timer('onnxruntime') for name, p in procs.items()}, 'onnxruntime', runs,
        log)
    for name, stats in onnx_stats.items():
        rows[name]['latency_ms']['onnxruntime'] = stats
    int8_timers = {}
    for name in _int8_models(procs, int8_threads):
        log(f'quantizing {name} to int8 ...')
        rows[name]['int8'] = procs[name].call('int8', name, work_dir,
                                              tuple(int8_threads))
        int8_timers[name] = {key: procs[name].timer(key)
                             for key in _int8_keys(int8_threads)}
    _add_int8_latency(rows, int8_timers, int8_threads, runs, log)
    return rows


def _int8_keys(int8_threads: Sequence[int]) -> List[str]:
    return [session_key(v, n) for n in int8_threads for v in VARIANTS]


def measure_models(builders: Dict[str, Builder], input_shape: Sequence[int],
                   runs: int, work_dir: str, threads: int = 0,
                   macs: bool = True, isolate: bool = True,
                   int8_threads: Sequence[int] = (),
                   log: Log = print) -> Dict[str, Dict]:
    """Report rows for ``{name: builder}``; per backend, the models' runs
    are taken in 10 alternating blocks, so that a drift of the machine's
    speed is shared by all models.

    ``isolate`` (default): each model lives in its own fresh Python process
    (as an app that loads one model), all of them at once, timed in turn:
    nothing one model did to its process (memory allocator state, thread
    pools, caches) changes another's time. Measured here: MobileNetV2's
    time in a shared process depended on the models timed before it
    (12-18 ms at 224x224); raising glibc malloc's mmap and trim thresholds
    removed the difference (docs/en/notes/latency_study.md).
    ``isolate=False``: all models in this process: less memory and start-up
    time, but subject to the cross-model effects above.
    ``int8_threads`` (e.g. ``(1, 2)``): also quantize the models of
    :data:`~.int8.INT8_MODELS` and time their fp32 and int8 ONNX Runtime
    sessions with each thread count (:mod:`.int8`), into ``row['int8']``.
    """
    if not isolate:
        # the models set this process's torch threads: the caller's come back
        saved = torch.get_num_threads()
        try:
            return _measure_in_process(builders, input_shape, runs, work_dir,
                                       threads, macs, int8_threads, log)
        finally:
            torch.set_num_threads(saved)
    log(f'starting {len(builders)} model processes ...')
    procs = {}
    try:
        for name, build in builders.items():
            procs[name] = ModelProcess(name, build, input_shape, threads)
        return _measure_isolated(procs, runs, work_dir, macs, int8_threads,
                                 log)
    finally:
        for proc in procs.values():
            proc.close()
