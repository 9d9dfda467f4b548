"""The whole latency study: measure the models (and the ablation), derive
the correlations and the goals, write benchmark.json and the plot, and print
the report (tools/analysis/benchmark.py)."""
import functools
import json
import os
import tempfile
from typing import Callable, Dict, List, Sequence

import torch

from mobileone_mm.utils.machine import machine
from .ablation import run_ablation
from .int8 import CALIBRATION_NOTE, INT8_THREADS, QUANT_OPTIONS, check_int8
from .ncnn import NCNN_THREADS, check_ncnn, ncnn_lines, ncnn_rows
from .plot import plot
from .stats import goals, int8_goal_line, int8_goals, int8_speedups, spearman
from .workers import BACKENDS, measure_models
from .zoo import build, top1


def _protocol(isolate: bool) -> str:
    return ('paper Sec. 3.5: load, preallocate input, run once, then '
            '`runs` timed runs; min (paper), median, p90; '
            + ('each model in its own fresh process' if isolate
               else 'all models in one process')
            + ', per backend the models\' runs in 10 alternating blocks')


def run(models: Sequence[str], runs: int, out_dir: str, input_size: int = 224,
        ablation: bool = False, ablation_size: int = 224, threads: int = 0,
        isolate: bool = True, int8: bool = False,
        int8_threads: Sequence[int] = INT8_THREADS, ncnn: bool = False,
        log: Callable[[str], None] = print) -> Dict:
    """Measure ``models`` (names from :func:`zoo.available_models`) and,
    with ``ablation``, the 30-layer net at ``ablation_size``; writes
    ``out_dir``/benchmark.json and latency_vs_macs.png and returns the
    report. ``threads``: CPU threads for PyTorch and ONNX Runtime (0: each
    library's default); ``isolate``: see :func:`workers.measure_models`;
    ``int8``: also the int8 rows of the models of
    :data:`~.int8.INT8_MODELS` with ``int8_threads`` (:mod:`.int8`);
    ``ncnn``: also the ncnn rows (:mod:`mobileone_mm.benchmark.ncnn`)."""
    if int8:
        check_int8(models, int8_threads)
    if ncnn:
        check_ncnn(models)
    os.makedirs(out_dir, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    shape = (1, 3, input_size, input_size)
    report = dict(machine=machine(), input_shape=list(shape), runs=runs,
                  threads=threads or 'library defaults',
                  protocol=_protocol(isolate), isolate=isolate, models={})
    with tempfile.TemporaryDirectory() as tmp:
        report['models'] = measure_models(
            {name: functools.partial(build, name) for name in models},
            shape, runs, tmp, threads, isolate=isolate,
            int8_threads=int8_threads if int8 else (), log=log)
        for name, row in report['models'].items():
            row['paper_top1'] = top1(name)
        report['spearman'] = {b: spearman(report['models'], b)
                              for b in BACKENDS}
        report['goals'] = goals(report['models'])
        if int8:
            report['int8'] = dict(
                threads=list(int8_threads), quantization=dict(
                    QUANT_OPTIONS, calibration=CALIBRATION_NOTE),
                protocol='per thread count, every int8 model\'s fp32 and '
                'int8 sessions in 10 alternating blocks',
                goals=int8_goals(report['models']))
        if ncnn:
            report['ncnn'] = dict(
                threads=list(NCNN_THREADS),
                protocol='fused models exported by the deploy backends; per '
                'thread count, every model in PyTorch, ONNX Runtime and '
                'ncnn (fp32) in 10 alternating blocks, in this process',
                rows=ncnn_rows(models, shape, runs, tmp, NCNN_THREADS, log))
        report['plot'] = plot(report['models'],
                              os.path.join(out_dir, 'latency_vs_macs.png'))
        if ablation:
            log('ablation: 30-layer conv net ...')
            report['ablation'] = run_ablation(runs, ablation_size, tmp,
                                              threads, isolate, log)
    with open(os.path.join(out_dir, 'benchmark.json'), 'w') as f:
        json.dump(report, f, indent=2)
    return report


def _cell(row: Dict, backend: str) -> str:
    """``min (median)`` latency of one backend, ``-`` if not measured."""
    lat = row['latency_ms'].get(backend)
    return f"{lat['min']:8.2f} ({lat['median']:6.2f})" if lat else '-'


def _model_lines(report: Dict) -> List[str]:
    m = report['machine']
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, torch "
             f"{m['torch']} ({m['torch_threads']} threads), onnxruntime "
             f"{m['onnxruntime']}; input {report['input_shape']}, "
             f"{report['runs']} runs, latency = min (median) ms",
             f"{'model':<22}{'params M':>9}{'MACs M':>9}{'top-1':>7}"
             f"{'PyTorch':>18}{'ONNX Runtime':>18}"]
    for name, row in report['models'].items():
        acc = row.get('paper_top1')
        lines.append(f"{name:<22}{row['params'] / 1e6:9.2f}"
                     f"{row['macs'] / 1e6:9.0f}"
                     f"{'' if acc is None else f'{acc:.1f}':>7}"
                     f"{_cell(row, 'torch'):>18}{_cell(row, 'onnxruntime'):>18}")
    return lines


def _spearman_lines(report: Dict) -> List[str]:
    return [f"Spearman (Table 1a), {backend}, {s['models']} models: "
            f"latency-MACs {s['macs']['corr']:.2f} "
            f"(p {s['macs']['p_value']:.2f}), "
            f"latency-params {s['params']['corr']:.2f} "
            f"(p {s['params']['p_value']:.2f})"
            for backend, s in report['spearman'].items() if 'macs' in s]


def _ablation_lines(ab: Dict) -> List[str]:
    lines = [f"ablation, 30-layer conv net, input {ab['input_shape']}: "
             'min (median) ms; paper: iPhone 12']
    for table, rows in (('Table 3', ab['table3']), ('Table 1b', ab['table1b'])):
        for name, row in rows.items():
            lines.append(f"  {table:<9}{name:<16}{_cell(row, 'torch'):>18}"
                         f"{_cell(row, 'onnxruntime'):>18}   paper "
                         f"{row['paper_iphone12_ms']:.2f}")
    return lines


def _goal_lines(report: Dict) -> List[str]:
    lines = []
    for g in report['goals']:
        ratio = 'n/a' if g['ratio'] is None else f"{g['ratio']:.2f}"
        med = g.get('ratio_of_medians')
        med = '' if med is None else f' (of medians {med:.2f})'
        lines.append(f"goal: {g['goal']}: measured {ratio}{med} -> "
                     f"{g['status']}")
    return lines


def _int8_lines(report: Dict) -> List[str]:
    """The int8 table: what the int8 kernels depend on (the CPU's
    features: VNNI or not), how the models were quantized, then fp32 and
    int8 per model and thread count, and the goal lines."""
    q = report['int8']['quantization']
    flags = report['machine'].get('cpu_flags') or []
    vnni = 'with' if any('vnni' in f for f in flags) else 'no'
    lines = [f"int8, ONNX Runtime: CPU features {' '.join(flags) or '-'} "
             f"({vnni} VNNI); {q['calibration']}; quantize_onnx("
             + ', '.join(f'{k}={v!r}' for k, v in q.items()
                         if k != 'calibration')
             + '); latency = min (median) ms, fp32 and int8 side by side',
             f"{'model':<22}{'threads':>8}{'fp32':>18}{'int8':>18}"
             f"{'fp32/int8':>16}{'QLinearConv':>13}"]
    for name, row in report['models'].items():
        if 'int8' not in row:
            continue
        fused = row['int8']['runtime_ops'].get('QLinearConv', 0) + \
            row['int8']['runtime_ops'].get('com.microsoft.QLinearConv', 0)
        speedups = int8_speedups(row)
        for threads, lat in row['int8']['latency_ms'].items():
            ratio = speedups[threads]
            lines.append(
                f"{name:<22}{threads:>8}"
                + ''.join(f"{_cell(dict(latency_ms=lat), v):>18}"
                          for v in ('fp32', 'int8'))
                + f"{ratio['min']:>8.2f}× ({ratio['median']:.2f}×)"
                + f'{fused:>8}')
    return lines + [int8_goal_line(g) for g in report['int8']['goals']]


def format_report(report: Dict) -> str:
    """The report of :func:`run` as the terminal table the tool prints."""
    lines = _model_lines(report) + _spearman_lines(report)
    if 'ablation' in report:
        lines += _ablation_lines(report['ablation'])
    lines += _goal_lines(report)
    if 'int8' in report:
        lines += _int8_lines(report)
    if 'ncnn' in report:
        lines += ncnn_lines(report)
    lines.append(f"plot: {report['plot']}")
    return '\n'.join(lines)
