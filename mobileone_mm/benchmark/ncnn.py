"""The ncnn rows of the benchmark (``--ncnn``): fused MobileOne S0-S4 and
MobileNetV2-1.0 in PyTorch, ONNX Runtime and ncnn side by side, with 1 and 2
threads, each exported through the deploy backends
(:mod:`mobileone_mm.deploy.backends`) and checked against PyTorch.

ncnn is built for ARM phones; on an x86 machine its figure is only a proxy
(ncnn's own ``benchncnn`` times the exported ``.param`` on a phone: see
docs/en/user_guides/android_ncnn.md). Per thread count, every model's three runtimes are timed in 10
alternating blocks together (:func:`~mobileone_mm.deploy.latency.
interleaved_latency`), in this process, so the ratios compare runs taken
side by side under the same machine load."""
import os.path as osp
from typing import Callable, Dict, Sequence

import torch

from mobileone_mm.deploy.backends import get_backend
from mobileone_mm.deploy.compare import compare_outputs, forward_tensors
from mobileone_mm.deploy.latency import (interleaved_latency, torch_runner,
                                         torch_threads)
from mobileone_mm.utils.errors import UserError
from .int8 import INT8_MODELS
from .zoo import build

# The same models as the int8 rows: the paper's fused S0-S4 and its baseline.
NCNN_MODELS = INT8_MODELS
NCNN_THREADS = (1, 2)
RUNTIMES = ('torch', 'onnxruntime', 'ncnn')


def check_ncnn(models: Sequence[str]) -> None:
    """A one-line :class:`UserError` when ``--ncnn`` can give no row or its
    libraries are missing."""
    if not any(m in NCNN_MODELS for m in models):
        raise UserError('--ncnn measures ' + ' '.join(NCNN_MODELS)
                        + '; none of them is among the models: add '
                        'mobileone_s0_fused to --models')
    for name in RUNTIMES[1:]:
        get_backend(name).require()


def ncnn_rows(models: Sequence[str], input_shape: Sequence[int], runs: int,
              work_dir: str, threads: Sequence[int] = NCNN_THREADS,
              log: Callable[[str], None] = print) -> Dict[str, Dict]:
    """Export each of ``models`` in :data:`NCNN_MODELS` to ONNX Runtime and
    ncnn (fp32 check against PyTorch), then time the three runtimes side by
    side per thread count. Returns ``{model: {'max_rel_diff': {backend:
    float}, 'latency_ms': {str(threads): {runtime: stats}}}}``."""
    rows, built, paths = {}, {}, {}
    x = torch.rand(*input_shape, generator=torch.Generator().manual_seed(0))
    for name in (m for m in models if m in NCNN_MODELS):
        log(f'ncnn rows: exporting {name} to ONNX Runtime and ncnn ...')
        model = built[name] = build(name).eval()
        reference = forward_tensors(model, x)
        rows[name] = dict(max_rel_diff={}, latency_ms={})
        for backend in RUNTIMES[1:]:
            b = get_backend(backend)
            path = paths[name, backend] = b.export(
                model, x, osp.join(work_dir, f'{name}.{backend}'))
            rows[name]['max_rel_diff'][backend] = compare_outputs(
                b.run(path, x), reference)['max_rel_diff']
    for n in threads:
        log(f'timing {", ".join(RUNTIMES)} with {n} thread(s): '
            f'{len(rows)} model(s), {runs} runs each ...')
        with torch_threads(n):
            runners = {(name, 'torch'): torch_runner(model, input_shape)
                       for name, model in built.items()}
            runners.update({
                (name, backend): get_backend(backend).runner(
                    path, input_shape, n)
                for (name, backend), path in paths.items()})
            for (name, runtime), stats in interleaved_latency(
                    runners, runs).items():
                rows[name]['latency_ms'].setdefault(str(n), {})[
                    runtime] = stats
    return rows


def ncnn_lines(report: Dict) -> list:
    """The ncnn table: min (median) ms of each runtime per model and thread
    count, and ncnn's and ONNX Runtime's error relative to PyTorch."""
    lines = [f"ncnn rows (x86 proxy: ncnn is built for ARM; time a phone "
             f"with benchncnn, see docs/en/user_guides/android_ncnn.md): "
             f"{report['ncnn']['protocol']}",
             f"{'model':<22}{'threads':>8}"
             + ''.join(f'{r:>18}' for r in RUNTIMES)
             + f"{'ncnn/ORT':>10}{'ncnn rel err':>14}"]
    for name, row in report['ncnn']['rows'].items():
        for n, lat in row['latency_ms'].items():
            cells = ''.join(f"{lat[r]['min']:8.2f} ({lat[r]['median']:6.2f})"
                            .rjust(18) for r in RUNTIMES)
            ratio = lat['ncnn']['min'] / lat['onnxruntime']['min']
            lines.append(f'{name:<22}{n:>8}{cells}{ratio:>10.2f}'
                         f"{row['max_rel_diff']['ncnn']:>14.1e}")
    return lines
