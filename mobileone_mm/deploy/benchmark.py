"""The paper's latency analysis on this machine (tools/analysis/benchmark.py).

* MobileOne S0-S4 (train-time and fused) and the efficient backbones that
  mmpretrain ships, as 1000-class ImageNet classifiers, batch 1, fp32,
  224x224, in PyTorch eager and ONNX Runtime, with the paper's protocol
  (Sec. 3.5: load, preallocate, run once, then N runs; the minimum is the
  paper's figure); params and MACs (fvcore-style, as Table 8);
* the Spearman rank correlation of latency with MACs and with params
  (Table 1a) and a plot of latency vs MACs with the paper's top-1;
* ``ablation``: Table 3 (activations) and Table 1b (SE blocks and skip
  connections) on a 30-layer conv net;
* the project's goals as measured ratios with PASS/FAIL.
"""
import json
import os
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mobileone_mm.models import LinearClassifier
from mobileone_mm.utils.machine import machine

from .complexity import count_macs, count_params
from .latency import (interleaved_blocks, interleaved_latency, time_runs,
                      torch_runner)
from .onnx import export_onnx, onnx_compare, onnx_runner, onnx_session
from .reparameterize import reparameterize

# ImageNet-1k top-1 (%) from the paper's Table 8 (224x224, no distillation).
PAPER_TOP1 = {
    'mobileone_s0': 71.4, 'mobileone_s1': 75.9, 'mobileone_s2': 77.4,
    'mobileone_s3': 78.1, 'mobileone_s4': 79.4,
    'mobilenet_v2_1.0': 72.0, 'mobilenet_v3_large': 75.2,
    'mobilenet_v3_small': 67.4, 'shufflenet_v2_1.0': 69.4,
    'efficientnet_b0': 77.1, 'mobilevit_s': 78.4, 'mobilevit_xs': 74.8,
    'mobilevit_xxs': 69.0,
}

# The baselines are mmpretrain's own model configs (1000-class heads, no
# weights), read from the installed package (mmpretrain::_base_/models/...).
BASELINES = {
    'mobilenet_v2_1.0': 'mobilenet_v2_1x.py',
    'mobilenet_v3_large': 'mobilenet_v3/mobilenet_v3_large_imagenet.py',
    'mobilenet_v3_small': 'mobilenet_v3/mobilenet_v3_small_imagenet.py',
    'shufflenet_v2_1.0': 'shufflenet_v2_1x.py',
    'efficientnet_b0': 'efficientnet_b0.py',
    'mobilevit_s': 'mobilevit/mobilevit_s.py',
    'mobilevit_xs': 'mobilevit/mobilevit_xs.py',
    'mobilevit_xxs': 'mobilevit/mobilevit_xxs.py',
}
ARCHS = ('s0', 's1', 's2', 's3', 's4')
QUICK_MODELS = ('mobileone_s0', 'mobileone_s0_fused', 'mobilenet_v2_1.0')

# Goals of issue 6 (the official code measured on a desktop CPU: fused
# S0 / MobileNetV2 = 0.44-0.48 in PyTorch eager, fusion 5.2-5.5x, ONNX
# Runtime 2.2x faster than PyTorch on fused S0).
GOALS = (
    ('fused S0 / MobileNetV2-1.0 latency, PyTorch eager', '<=', 0.5),
    ('fusion speed-up of S0 (train-time / fused), PyTorch eager', '>=', 5.0),
    ('fastest CPU backend (ONNX Runtime) speed-up over PyTorch eager, fused S0',
     '>=', 2.0),
)


def mobileone_classifier(arch: str, fused: bool) -> nn.Module:
    """Our backbone + the linear head of Apple's classifier."""
    from mobileone_mm.models.backbones import MobileOne
    model = LinearClassifier(MobileOne(arch=arch, out_indices=(3, )))
    return reparameterize(model) if fused else model.eval()


def mmpretrain_classifier(name: str) -> nn.Module:
    import mmpretrain
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    path = os.path.join(os.path.dirname(mmpretrain.__file__), '.mim',
                        'configs', '_base_', 'models', BASELINES[name])
    init_default_scope('mmpretrain')
    return MODELS.build(Config.fromfile(path).model).eval()


def available_models() -> List[str]:
    """MobileOne S0-S4 (train-time, fused) and the baselines whose configs
    the installed mmpretrain has."""
    import mmpretrain
    root = os.path.join(os.path.dirname(mmpretrain.__file__), '.mim',
                        'configs', '_base_', 'models')
    names = []
    for arch in ARCHS:
        names += [f'mobileone_{arch}', f'mobileone_{arch}_fused']
    return names + [n for n, p in BASELINES.items()
                    if os.path.isfile(os.path.join(root, p))]


def build(name: str) -> nn.Module:
    if name.startswith('mobileone_'):
        arch = name.split('_')[1]
        return mobileone_classifier(arch, fused=name.endswith('_fused'))
    if name in BASELINES:
        return mmpretrain_classifier(name)
    raise KeyError(name)


def top1(name: str) -> Optional[float]:
    return PAPER_TOP1.get(name.replace('_fused', ''))


def prepare(model: nn.Module, input_shape: Sequence[int], work_dir: str,
            name: str, backends=('torch', 'onnx'), macs: bool = True,
            threads: int = 0):
    """Params, MACs, the ONNX export and its check for one model; returns
    the report row and one timing closure per backend (input preallocated)."""
    model.eval()
    row = dict(params=count_params(model),
               macs=count_macs(model, input_shape) if macs else None,
               latency_ms={})
    runners = {}
    torch.manual_seed(0)
    if 'torch' in backends:
        runners['torch'] = torch_runner(model, input_shape)
    if 'onnx' in backends:
        path = export_onnx(model, torch.rand(*input_shape),
                           os.path.join(work_dir, f'{name}.onnx'))
        session = onnx_session(path, threads)
        x = torch.rand(*input_shape)
        # random weights: outputs can be large (summed train-time branches),
        # so the diff is also given relative to the largest output
        check = onnx_compare(session, model, x)
        row['onnx_max_abs_diff'] = check['max_abs_diff']
        row['onnx_max_rel_diff'] = check['max_rel_diff']
        runners['onnx'] = onnx_runner(session, input_shape)
    return row, runners


def time_all(rows: Dict[str, Dict], runners: Dict[str, Dict], runs: int,
             log: Callable[[str], None] = print) -> None:
    """Latency of every model, one backend at a time, the models' runs in
    alternating blocks (analysis.interleaved_latency) so that the ratios
    compared with the goals do not depend on the machine's drift."""
    backends = dict.fromkeys(b for r in runners.values() for b in r)
    for backend in backends:
        todo = {name: r[backend] for name, r in runners.items()
                if backend in r}
        log(f'timing {len(todo)} models in {backend}, {runs} runs each ...')
        for name, stats in interleaved_latency(todo, runs).items():
            rows[name]['latency_ms'][backend] = stats


def build_spec(spec) -> nn.Module:
    """A model name (see ``available_models``) or ``('net30', act, skip)``
    for the ablation net."""
    if isinstance(spec, (tuple, list)):
        return conv_net30(spec[1], spec[2])
    return build(spec)


def _serve(conn, spec, input_shape: Sequence[int], threads: int) -> None:
    """A worker process holding one model: built first and timed in
    PyTorch before anything else (MAC counting and the ONNX export trace
    the model, and their allocations change the memory allocator's state);
    then, on request, its MACs, ONNX export and ONNX Runtime session.
    Commands: ``('time', backend, n)`` -> n run times (s);
    ``('prepare', name, work_dir, macs)`` -> the report row; ``None``: stop.
    Every answer is ``(ok, value)``, a traceback when not ok."""
    import traceback
    try:
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = build_spec(spec).eval()
        runners = dict(torch=torch_runner(model, input_shape))
        conn.send((True, None))
        while (msg := conn.recv()) is not None:
            if msg[0] == 'time':
                answer = time_runs(runners[msg[1]], msg[2])
            else:
                answer, onnx = prepare(model, input_shape, msg[2], msg[1],
                                       backends=('onnx', ), macs=msg[3],
                                       threads=threads)
                runners.update(onnx)
            conn.send((True, answer))
    except Exception:  # reported by the parent, with the model's name
        conn.send((False, traceback.format_exc()))
    finally:
        conn.close()


class ModelProcess:
    """One model in its own fresh (spawned) Python process; see ``_serve``."""

    def __init__(self, name: str, spec, input_shape: Sequence[int],
                 threads: int) -> None:
        import multiprocessing
        context = multiprocessing.get_context('spawn')
        self.name = name
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, spec, tuple(input_shape), threads),
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


def measure_models(specs: Dict[str, object], input_shape: Sequence[int],
                   runs: int, work_dir: str, threads: int = 0,
                   macs: bool = True, isolate: bool = True,
                   log: Callable[[str], None] = print) -> Dict[str, Dict]:
    """Report rows for ``{name: spec}``; per backend, the models' runs are
    taken in 10 alternating blocks (``analysis.interleaved_blocks``), so
    that a drift of the machine's speed is shared by all models.

    ``isolate`` (default): each model lives in its own fresh Python process
    (as an app that loads one model), all of them at once, timed in turn:
    nothing one model did to its process (memory allocator state, thread
    pools, caches) changes another's time. Measured here: MobileNetV2's
    time in a shared process depended on the models timed before it
    (12-18 ms at 224x224); raising glibc malloc's mmap and trim thresholds
    removed the difference (README, Benchmarks).
    ``isolate=False``: all models in this process: less memory and start-up
    time, but subject to the cross-model effects above.
    """
    rows = {}
    if not isolate:
        runners = {}
        for name, spec in specs.items():
            log(f'building and exporting {name} ...')
            torch.manual_seed(0)
            rows[name], runners[name] = prepare(build_spec(spec), input_shape,
                                                work_dir, name, macs=macs,
                                                threads=threads)
        time_all(rows, runners, runs, log)
        return rows
    log(f'starting {len(specs)} model processes ...')
    procs = {}
    try:
        for name, spec in specs.items():
            procs[name] = ModelProcess(name, spec, input_shape, threads)
        for proc in procs.values():
            proc.call()  # built
        log(f'timing {len(procs)} models in torch, {runs} runs each ...')
        torch_stats = interleaved_blocks(
            {name: p.timer('torch') for name, p in procs.items()}, runs)
        for name, proc in procs.items():
            log(f'exporting {name} ...')
            rows[name] = proc.call('prepare', name, work_dir, macs)
            rows[name]['latency_ms']['torch'] = torch_stats[name]
        log(f'timing {len(procs)} models in onnx, {runs} runs each ...')
        for name, stats in interleaved_blocks(
                {name: p.timer('onnx') for name, p in procs.items()},
                runs).items():
            rows[name]['latency_ms']['onnx'] = stats
    finally:
        for proc in procs.values():
            proc.close()
    return rows


def spearman(results: Dict[str, Dict], backend: str) -> Dict:
    """Table 1a: rank correlation of the minimum latency with MACs and with
    params over the models measured (scipy.stats.spearmanr)."""
    from scipy.stats import spearmanr
    rows = [r for r in results.values() if backend in r['latency_ms']]
    if len(rows) < 3:
        return dict(models=len(rows), note='needs at least 3 models')
    lat = [r['latency_ms'][backend]['min'] for r in rows]
    out = dict(models=len(rows))
    for key in ('macs', 'params'):
        rho, p = spearmanr(lat, [r[key] for r in rows])
        out[key] = dict(corr=float(rho), p_value=float(p))
    return out


def goals(results: Dict[str, Dict]) -> List[Dict]:
    """The three goal ratios, measured (never hard-coded); a goal whose
    models were not measured is reported as missing."""

    def lat(name, backend='torch', stat='min'):
        row = results.get(name)
        if row is None or backend not in row['latency_ms']:
            return None
        return row['latency_ms'][backend][stat]

    def pairs(stat):
        return (
            (lat('mobileone_s0_fused', stat=stat),
             lat('mobilenet_v2_1.0', stat=stat)),
            (lat('mobileone_s0', stat=stat),
             lat('mobileone_s0_fused', stat=stat)),
            (lat('mobileone_s0_fused', stat=stat),
             lat('mobileone_s0_fused', 'onnx', stat)),
        )

    def ratio(num, den):
        return None if num is None or den is None else num / den

    out = []
    for (text, op, target), (num, den), medians in zip(
            GOALS, pairs('min'), pairs('median')):
        r = ratio(num, den)
        ok = None if r is None else (r <= target if op == '<='
                                     else r >= target)
        out.append(dict(goal=f'{text} {op} {target}', ratio=r,
                        ratio_of_medians=ratio(*medians),
                        status='MISSING' if ok is None else
                        ('PASS' if ok else 'FAIL')))
    return out


def _label_offsets(points: List[Tuple[float, float, str]], to_pixels,
                   dpi: float, height: float = 9.) -> List[Tuple]:
    """Vertical offsets (points) that keep 7-pt labels from overlapping:
    from the lowest point up, a label that would cover one already placed
    moves above it."""
    scale = 72. / dpi
    placed, out = [], []
    for x, y, label in sorted(points, key=lambda p: p[1]):
        px, py = (v * scale for v in to_pixels.transform((x, y)))
        left, right = px + 3, px + 3 + 4. * len(label)
        bottom = py + 3
        for pl, pr, pb in sorted(placed, key=lambda b: b[2]):
            if pl < right and left < pr and abs(bottom - pb) < height:
                bottom = pb + height
        placed.append((left, right, bottom))
        out.append((x, y, label, bottom - py))
    return out


def plot(results: Dict[str, Dict], path: str, backend: str = 'torch') -> str:
    """Latency (min) vs MACs, each point labelled with the paper's top-1."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5.5))
    points = []
    for name, row in results.items():
        if backend not in row['latency_ms']:
            continue
        x, y = row['macs'] / 1e6, row['latency_ms'][backend]['min']
        color = ('tab:red' if name.endswith('_fused') else 'tab:orange'
                 if name.startswith('mobileone') else 'tab:blue')
        ax.scatter(x, y, c=color, s=25)
        acc = top1(name)
        points.append((x, y, name + (f' ({acc:.1f}%)'
                                     if acc is not None else '')))
    fig.canvas.draw()  # fixes the axis limits the label layout needs
    for x, y, label, dy in _label_offsets(points, ax.transData, fig.dpi):
        ax.annotate(label, (x, y), fontsize=7, xytext=(3, dy),
                    textcoords='offset points')
    ax.set_xlabel('MACs (M), fvcore-style')
    ax.set_ylabel(f'latency, min of runs (ms), {backend}, batch 1, fp32')
    ax.set_title('Latency vs MACs; labels: paper Table 8 ImageNet top-1\n'
                 'red: MobileOne fused, orange: MobileOne train-time, '
                 'blue: mmpretrain baselines', fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- ablation
# The paper's 30-layer conv net (Sec. 3.2, Tables 1b and 3) is not specified
# beyond its depth; ours: 30 3x3 conv+BN+activation layers in 5 stages of 6
# (widths 16-256, stride 2 at each stage's first layer), global pool + linear.
ABLATION_WIDTHS = (16, 32, 64, 128, 256)


class DynamicReLU(nn.Module):
    """DynamicReLU (Chen et al. 2020, the paper's [41]): y = max_k(a_k x + b_k)
    with the 2K coefficients predicted from the globally pooled input.
    'A': shared by all channels; 'B': per channel. Written by hand: none of
    the installed libraries has it."""

    def __init__(self, channels: int, kind: str = 'A', k: int = 2,
                 reduction: int = 4) -> None:
        super().__init__()
        self.k, self.per_channel = k, kind == 'B'
        out = 2 * k * (channels if self.per_channel else 1)
        self.fc = nn.Sequential(
            nn.Linear(channels, max(channels // reduction, 4)), nn.ReLU(),
            nn.Linear(max(channels // reduction, 4), out))
        init = torch.zeros(2 * k)  # starts as ReLU: a = (1, 0), b = 0
        init[0] = 1.
        self.register_buffer('init', init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        theta = 2 * torch.sigmoid(self.fc(x.mean((2, 3)))) - 1
        theta = theta.view(n, -1, 2 * self.k) + self.init
        if not self.per_channel:
            theta = theta.expand(n, c, 2 * self.k)
        a, b = theta[..., :self.k], theta[..., self.k:]
        y = x.unsqueeze(-1) * a[:, :, None, None] + b[:, :, None, None]
        return y.max(-1).values


def make_activation(kind: str, channels: int) -> nn.Module:
    if kind == 'relu':
        return nn.ReLU()
    if kind == 'gelu':
        return nn.GELU()
    if kind == 'silu':
        return nn.SiLU()
    if kind == 'se_relu':  # mmpretrain's SE block, then ReLU (paper Fig. 3)
        from mmpretrain.models.utils import SELayer
        return nn.Sequential(SELayer(channels, ratio=16), nn.ReLU())
    if kind in ('dynamic_relu_a', 'dynamic_relu_b'):
        return DynamicReLU(channels, kind[-1].upper())
    raise KeyError(kind)


class ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, act: str,
                 skip: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = make_activation(act, cout)
        self.skip = skip and stride == 1 and cin == cout

    def forward(self, x):
        y = self.act(self.bn(self.conv(x)))
        return x + y if self.skip else y


def conv_net30(act: str = 'relu', skip: bool = False,
               num_classes: int = 1000) -> nn.Module:
    layers, cin = [], 3
    for cout in ABLATION_WIDTHS:
        for i in range(6):
            layers.append(ConvLayer(cin, cout, 2 if i == 0 else 1, act, skip))
            cin = cout
    assert len(layers) == 30
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(cin, num_classes))


# name -> (activation, skip connections); paper figures (iPhone 12, ms).
TABLE3 = {'relu': 1.53, 'gelu': 1.63, 'se_relu': 2.10, 'silu': 2.54,
          'dynamic_relu_a': 273.49, 'dynamic_relu_b': 242.14}
TABLE1B = {'baseline': ('relu', False, 1.53), '+se': ('se_relu', False, 2.10),
           '+se+skip': ('se_relu', True, 2.62)}


def run_ablation(runs: int, input_size: int, work_dir: str,
                 threads: int = 0, isolate: bool = True,
                 log: Callable[[str], None] = print) -> Dict:
    shape = (1, 3, input_size, input_size)
    variants = {(act, False): f'net30_{act}' for act in TABLE3}
    for act, skip, _ in TABLE1B.values():
        variants.setdefault((act, skip), f'net30_{act}_skip')
    rows = measure_models(
        {name: ('net30', act, skip) for (act, skip), name in variants.items()},
        shape, runs, work_dir, threads, macs=False, isolate=isolate, log=log)
    out = dict(input_shape=list(shape), table3={}, table1b={})
    for act, paper in TABLE3.items():
        out['table3'][act] = dict(rows[variants[(act, False)]],
                                  paper_iphone12_ms=paper)
    for name, (act, skip, paper) in TABLE1B.items():
        out['table1b'][name] = dict(rows[variants[(act, skip)]],
                                    paper_iphone12_ms=paper)
    return out


# ---------------------------------------------------------------- driver
def run(models: Sequence[str], runs: int, out_dir: str, input_size: int = 224,
        ablation: bool = False, ablation_size: int = 224, threads: int = 0,
        isolate: bool = True, log: Callable[[str], None] = print) -> Dict:
    """``threads``: CPU threads for PyTorch and ONNX Runtime (0: each
    library's default); ``isolate``: see ``measure_models``."""
    os.makedirs(out_dir, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    shape = (1, 3, input_size, input_size)
    protocol = ('paper Sec. 3.5: load, preallocate input, run once, then '
                '`runs` timed runs; min (paper), median, p90; ')
    protocol += ('each model in its own fresh process' if isolate else
                 'all models in one process')
    protocol += ', per backend the models\' runs in 10 alternating blocks'
    report = dict(machine=machine(), input_shape=list(shape), runs=runs,
                  threads=threads or 'library defaults', protocol=protocol,
                  isolate=isolate, models={})
    with tempfile.TemporaryDirectory() as tmp:
        report['models'] = measure_models({name: name for name in models},
                                          shape, runs, tmp, threads,
                                          isolate=isolate, log=log)
        for name, row in report['models'].items():
            row['paper_top1'] = top1(name)
        report['spearman'] = {b: spearman(report['models'], b)
                              for b in ('torch', 'onnx')}
        report['goals'] = goals(report['models'])
        report['plot'] = plot(report['models'],
                              os.path.join(out_dir, 'latency_vs_macs.png'))
        if ablation:
            log('ablation: 30-layer conv net ...')
            report['ablation'] = run_ablation(runs, ablation_size, tmp,
                                              threads, isolate, log)
    with open(os.path.join(out_dir, 'benchmark.json'), 'w') as f:
        json.dump(report, f, indent=2)
    return report


def format_report(report: Dict) -> str:
    m = report['machine']
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, torch "
             f"{m['torch']} ({m['torch_threads']} threads), onnxruntime "
             f"{m['onnxruntime']}; input {report['input_shape']}, "
             f"{report['runs']} runs, latency = min (median) ms",
             f"{'model':<22}{'params M':>9}{'MACs M':>9}{'top-1':>7}"
             f"{'PyTorch':>18}{'ONNX Runtime':>18}"]

    def cell(row, backend):
        lat = row['latency_ms'].get(backend)
        return f"{lat['min']:8.2f} ({lat['median']:6.2f})" if lat else '-'

    for name, row in report['models'].items():
        acc = row.get('paper_top1')
        lines.append(f"{name:<22}{row['params'] / 1e6:9.2f}"
                     f"{row['macs'] / 1e6:9.0f}"
                     f"{'' if acc is None else f'{acc:.1f}':>7}"
                     f"{cell(row, 'torch'):>18}{cell(row, 'onnx'):>18}")
    for backend, s in report['spearman'].items():
        if 'macs' in s:
            lines.append(
                f"Spearman (Table 1a), {backend}, {s['models']} models: "
                f"latency-MACs {s['macs']['corr']:.2f} (p {s['macs']['p_value']:.2f}), "
                f"latency-params {s['params']['corr']:.2f} "
                f"(p {s['params']['p_value']:.2f})")
    if 'ablation' in report:
        ab = report['ablation']
        lines.append(f"ablation, 30-layer conv net, input {ab['input_shape']}: "
                     'min (median) ms; paper: iPhone 12')
        for table, rows in (('Table 3', ab['table3']), ('Table 1b', ab['table1b'])):
            for name, row in rows.items():
                lines.append(f"  {table:<9}{name:<16}{cell(row, 'torch'):>18}"
                             f"{cell(row, 'onnx'):>18}   paper "
                             f"{row['paper_iphone12_ms']:.2f}")
    for g in report['goals']:
        ratio = 'n/a' if g['ratio'] is None else f"{g['ratio']:.2f}"
        med = g.get('ratio_of_medians')
        med = '' if med is None else f' (of medians {med:.2f})'
        lines.append(f"goal: {g['goal']}: measured {ratio}{med} -> "
                     f"{g['status']}")
    lines.append(f"plot: {report['plot']}")
    return '\n'.join(lines)
