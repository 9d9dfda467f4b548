"""Training-step and unfused-eval speed of the branch formulations.

``python tools/analysis/benchmark.py --training``: the training step
(forward, cross-entropy on a 1000-class linear head, backward, SGD step) of
MobileOne S0 and S2 with the per-branch formulation (ml-mobileone's) and the
fast one (:mod:`mobileone_mm.models.backbones.fast_branches`), and the eval
forward of the unfused S0 both ways and fused, all timed side by side in one
process in alternating blocks (:func:`interleaved_latency`), so the ratios
do not depend on the machine's slow and fast phases.
"""
import itertools
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

from mobileone_mm.deploy.latency import interleaved_latency
from mobileone_mm.models import LinearClassifier, MobileOne
from mobileone_mm.utils.machine import machine

# (batch, input size): the paper's ImageNet crop and the demo's batches.
SETTINGS = ((32, 224), (12, 128))
# Goals of the training-speed work, each a per-branch / fast time ratio.
TRAINING_GOALS = (('s0', 'train', 1.5), ('s2', 'train', 1.15),
                  ('s0', 'eval', 4.0))
# Variants of the fast formulation that can be measured on request.
EXTRAS = ('channels_last', 'compile')


def _model(arch: str, impl: str, fused: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model = LinearClassifier(MobileOne(arch, branch_impl=impl), 1000)
    if fused:
        model.backbone.switch_to_deploy()
    return model


def train_step_runner(arch: str, impl: str, batch: int, size: int,
                      extra: str = '') -> Callable[[], None]:
    """One optimizer step of ``arch`` on a preallocated random batch."""
    model = _model(arch, impl).train()
    x = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, 1000, (batch, ))
    if extra == 'channels_last':
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(model) if extra == 'compile' else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def run():
        opt.zero_grad(set_to_none=True)
        loss_fn(forward(x), labels).backward()
        opt.step()

    return run


def eval_runner(arch: str, impl: str, batch: int,
                size: int) -> Callable[[], None]:
    """One eval forward; ``impl='fused'`` runs the fused network."""
    fused = impl == 'fused'
    model = _model(arch, 'fast' if fused else impl, fused).eval()
    x = torch.randn(batch, 3, size, size)

    def run():
        with torch.no_grad():
            model(x)

    return run


def _runners(archs: Sequence[str], settings: Sequence[Tuple[int, int]],
             extras: Sequence[str]) -> Dict[Tuple, Callable[[], None]]:
    runners = {}
    for (batch, size), arch in itertools.product(settings, archs):
        for impl in ('reference', 'fast', *extras):
            key = ('train', arch, batch, size, impl)
            runners[key] = train_step_runner(
                arch, 'fast' if impl in EXTRAS else impl, batch, size,
                impl if impl in EXTRAS else '')
    for batch, size in settings:
        for impl in ('reference', 'fast', 'fused'):
            runners[('eval', 's0', batch, size, impl)] = eval_runner(
                's0', impl, batch, size)
    return runners


def _ratios(times: Dict[Tuple, Dict[str, float]]) -> List[Dict]:
    rows = []
    for key, t in times.items():
        mode, arch, batch, size, impl = key
        if impl == 'reference':
            continue
        ref = times[(mode, arch, batch, size, 'reference')]
        goal = next((g for a, m, g in TRAINING_GOALS
                     if (a, m) == (arch, mode) and impl == 'fast'), None)
        ratio = ref['min'] / t['min']
        rows.append(dict(
            mode=mode, arch=arch, batch=batch, size=size, impl=impl,
            reference_ms=ref['min'], ms=t['min'], speedup=ratio,
            speedup_of_medians=ref['median'] / t['median'], goal=goal,
            status=None if goal is None else
            ('PASS' if ratio >= goal else 'FAIL')))
    return rows


def run_training(archs: Sequence[str] = ('s0', 's2'),
                 settings: Sequence[Tuple[int, int]] = SETTINGS,
                 runs: int = 6, rounds: int = 3, threads: int = 2,
                 extras: Sequence[str] = ()) -> Dict:
    """Time every runner in ``rounds`` alternating blocks of ``runs`` in
    all; returns the minimum and median times and the speed-ups."""
    unknown = set(extras) - set(EXTRAS)
    if unknown:
        raise ValueError(f'unknown extras {sorted(unknown)}; choose from '
                         f'{EXTRAS}')
    if threads:
        torch.set_num_threads(threads)
    times = interleaved_latency(_runners(archs, settings, extras), runs,
                                rounds)
    return dict(machine=machine(), runs=runs, rounds=rounds,
                times_ms={'/'.join(map(str, k)): v for k, v in times.items()},
                speedups=_ratios(times))


def format_training(report: Dict) -> str:
    m = report['machine']
    lines = [f"{m['cpu']} ({m['cores']} cores, torch threads "
             f"{m['torch_threads']}); min of {report['runs']} runs in "
             f"{report['rounds']} alternating blocks",
             f"{'mode':5} {'arch':4} {'batch@size':>10} {'impl':>13} "
             f"{'per-branch ms':>13} {'ms':>9} {'speed-up':>8}  goal"]
    for r in report['speedups']:
        goal = (f">= {r['goal']}: {r['status']}" if r['goal'] is not None
                else '')
        lines.append(
            f"{r['mode']:5} {r['arch']:4} {r['batch']:>4}@{r['size']:<5} "
            f"{r['impl']:>13} {r['reference_ms']:13.1f} {r['ms']:9.1f} "
            f"{r['speedup']:7.2f}x  {goal}")
    return '\n'.join(lines)
