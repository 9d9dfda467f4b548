"""The deploy tool (``tools/deploy.py``) as a Python API.

:func:`deploy` builds a config's model, fuses it with
:func:`mobileone_mm.reparameterize`, checks fused against unfused, exports the
backbone (and with ``full_model`` the whole network without post-processing)
to a Core ML ML program and to ONNX, reads the exported programs' operations,
checks that the fused backbone is a plain chain, times every backend with the
paper's protocol (Sec. 3.5) and writes ``report.json``.

Conversion, graph reading and timing are coremltools', onnx's and ONNX
Runtime's own; what is written here is the glue and the branch-free check.
"""
import collections
import contextlib
import copy
import io
import json
import logging
import os
import os.path as osp
import platform
import sys
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config

from mobileone_mm.apis import build_model, input_shape_from_config, load_config
from mobileone_mm.utils.errors import UserError
from mobileone_mm.utils.machine import machine
from .compare import RTOL, compare_models, forward_tensors
from .latency import interleaved_latency, measure_latency, torch_runner
from .onnx import (export_onnx, onnx_latency, onnx_ops, onnx_run, onnx_session,
                   require_onnx)
from .reparameterize import count_unfused, reparameterize

BACKENDS = ('coreml', 'onnx')
PRECISIONS = ('fp32', 'fp16')
# ML programs need iOS 15 / macOS 12 at least: the default, the widest reach
# (the paper's iPhone 12, Sec. 3.5, runs it).
TARGETS = ('iOS15', 'iOS16', 'iOS17', 'iOS18')
# coremltools' ComputeUnit names (Core ML chooses among the allowed units).
COMPUTE_UNITS = {'all': 'ALL', 'cpu_and_ne': 'CPU_AND_NE',
                 'cpu_only': 'CPU_ONLY', 'cpu_and_gpu': 'CPU_AND_GPU'}
CALIBRATION_BATCHES = 4


class DeployCheckFailed(RuntimeError):
    """An export was written but a check failed (branches remain, or outputs
    differ); ``report`` is the report, already saved."""

    def __init__(self, message: str, report: dict) -> None:
        super().__init__(message)
        self.report = report


# ---------------------------------------------------------------- Core ML
@contextlib.contextmanager
def _quiet():
    """Silence coremltools' progress bars, its warnings about the torch
    version and the missing macOS runtime, and tracer warnings; what was
    said is shown if the block fails."""
    err = io.StringIO()
    logger = logging.getLogger('coremltools')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    except Exception:
        sys.stderr.write(err.getvalue()[-4000:])
        raise
    finally:
        logger.setLevel(level)


def _coremltools():
    try:
        with _quiet():
            import coremltools as ct
    except ImportError as err:
        raise UserError(f'the coreml backend needs coremltools ({err}): pip '
                        f'install "mobileone_mm[deploy]", or pass --backends onnx')
    return ct


def export_coreml(model: nn.Module, example: torch.Tensor, path: str,
                  precision: str = 'fp32', target: str = 'iOS15') -> str:
    """Trace ``model`` (outputs flattened to ``output0..n``) and convert it to
    a Core ML ML program saved as ``path`` (``.mlpackage``)."""
    from .onnx import TensorOutputs
    ct = _coremltools()
    wrapped = TensorOutputs(model).eval()
    with torch.no_grad():
        num_outputs = len(wrapped(example))
    with _quiet(), torch.no_grad():
        # no re-trace check: the network is static, and its outputs are
        # compared with ONNX Runtime's (and Core ML's on macOS) anyway
        traced = torch.jit.trace(wrapped, example, check_trace=False)
        mlmodel = ct.convert(
            traced,
            # float32 in and out at every precision and target (iOS16+
            # would otherwise make an fp16 program's I/O fp16)
            inputs=[ct.TensorType(name='input', shape=tuple(example.shape),
                                  dtype=np.float32)],
            outputs=[ct.TensorType(name=f'output{i}', dtype=np.float32)
                     for i in range(num_outputs)],
            convert_to='mlprogram',
            compute_precision=(ct.precision.FLOAT16 if precision == 'fp16'
                               else ct.precision.FLOAT32),
            minimum_deployment_target=getattr(ct.target, target))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    mlmodel.save(path)
    return path


def coreml_ops(path: str) -> Dict[str, int]:
    """Operation counts of a saved ML program's ``main`` function, read from
    its spec (works on any OS; no Core ML runtime needed)."""
    ct = _coremltools()
    with _quiet():
        spec = ct.models.MLModel(path, skip_model_load=True).get_spec()
    if not spec.HasField('mlProgram'):
        raise ValueError(f'{path} is not an ML program')
    main = spec.mlProgram.functions['main']
    block = main.block_specializations[main.opset]
    counts = collections.Counter(op.type for op in block.operations)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def coreml_latency(path: str, input_shape: Sequence[int], runs: int,
                   compute_units: str = 'all') -> Tuple[Optional[dict], str]:
    """Core ML latency with the paper's protocol where Core ML can predict
    (macOS); elsewhere ``(None, note)``."""
    if platform.system() != 'Darwin':
        return None, (f'Core ML latency needs macOS (Core ML predicts only '
                      f'there); this is {platform.system()}: ONNX Runtime and '
                      f'PyTorch are timed instead')
    ct = _coremltools()
    units = getattr(ct.ComputeUnit, COMPUTE_UNITS[compute_units])
    mlmodel = ct.models.MLModel(path, compute_units=units)  # load (compile)
    feed = {'input': np.random.rand(*input_shape).astype(np.float32)}
    stats = measure_latency(lambda: mlmodel.predict(feed), runs)
    return stats, f'Core ML on {platform.mac_ver()[0] or "macOS"}, ' \
                  f'compute units {compute_units}'


def coreml_max_abs_diff(path: str, model: nn.Module,
                        x: torch.Tensor) -> Optional[float]:
    """Core ML vs PyTorch (macOS only; ``None`` elsewhere)."""
    if platform.system() != 'Darwin':
        return None
    ct = _coremltools()
    out = ct.models.MLModel(path).predict({'input': x.numpy()})
    ref = forward_tensors(model, x)
    return max(float(np.abs(out[f'output{i}'] - r.numpy()).max())
               for i, r in enumerate(ref))


# ------------------------------------------------------- branch-free check
def chain_expectation(backbone: nn.Module) -> Dict[str, int]:
    """What a fused MobileOne backbone must look like: one conv per block
    (43 for S0-S4: stem + 2 x 21 block pairs, paper Table 2) plus the two
    1x1 convs of each SE-ReLU (S4: 12 SE blocks, 67 convs), no additions."""
    from mobileone_mm.models.backbones.mobileone import (MobileOneBlock,
                                                         SqueezeExcite)
    blocks = sum(isinstance(m, MobileOneBlock) for m in backbone.modules())
    se = sum(isinstance(m, SqueezeExcite) for m in backbone.modules())
    return dict(blocks=blocks, se_blocks=se, convs=blocks + 2 * se, adds=0)


def branch_free(ops: Dict[str, int], expected: Dict[str, int],
                conv: str = 'conv', add: str = 'add') -> Tuple[bool, str]:
    """Do the exported program's op counts prove a plain chain?"""
    convs, adds = ops.get(conv, 0), ops.get(add, 0)
    if convs == expected['convs'] and adds == 0:
        return True, (f'{convs} {conv} = {expected["blocks"]} fused blocks'
                      + (f' + 2 x {expected["se_blocks"]} SE'
                         if expected['se_blocks'] else '')
                      + f', 0 {add}: a plain chain')
    return False, (f'branches remain: {convs} {conv} (a fused chain has '
                   f'{expected["convs"]}) and {adds} {add} (a chain has 0)')


# ------------------------------------------------------------ model set-up
def _checkpoint_is_fused(path: str) -> bool:
    try:  # mmengine checkpoints hold numpy scalars: not weights_only
        state = torch.load(path, map_location='cpu', weights_only=False)
    except Exception as err:
        raise UserError(f'cannot read checkpoint {path}: '
                        f'{type(err).__name__}: {str(err)[:200]}')
    state = state.get('state_dict', state) if isinstance(state, dict) else {}
    return any('reparam_conv' in k for k in state)


def _backbone_of(model: nn.Module) -> nn.Module:
    from mobileone_mm.models import MobileOne
    backbone = model if isinstance(model, MobileOne) else \
        getattr(model, 'backbone', None)
    if not isinstance(backbone, MobileOne):
        raise UserError(f'the config\'s model has no MobileOne backbone '
                        f'(model.backbone is {type(backbone).__name__}); '
                        f'tools/deploy.py exports mobileone_mm models')
    return backbone


def _whole_backbone(backbone: nn.Module) -> nn.Module:
    """A copy returning every configured output and stage 4's: the export
    runs the full backbone through its last stage."""
    whole = copy.deepcopy(backbone)
    whole.out_indices = tuple(sorted(set(backbone.out_indices) | {3}))
    return whole.eval()


def calibrate_bn(model: nn.Module, input_shape: Sequence[int],
                 batches: int = CALIBRATION_BATCHES) -> nn.Module:
    """Give a randomly initialized model realistic BN statistics: a few
    forward passes on random inputs with only the BN layers in train mode, at
    their own momentum (as training's first iterations would). With identity
    statistics a random MobileOne's activations grow to ~1e5 and absolute
    differences mean nothing; exact estimates (torch's ``update_bn``) are no
    better: random dead channels get variances ~1e-9, whose ``1/sqrt(eps)``
    gain amplifies float32 rounding ~300x. Written here for that reason; the
    weights stay random."""
    from torch.nn.modules.batchnorm import _BatchNorm
    shape = (2, ) + tuple(input_shape[1:])
    gen = torch.Generator().manual_seed(0)
    model.eval()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    for m in norms:
        m.train()
    with torch.no_grad():
        for _ in range(batches):
            forward_tensors(model, torch.rand(*shape, generator=gen))
    return model.eval()


def _validate(backends, precision, target, compute_units, runs, input_size):
    backends = list(dict.fromkeys(b.lower() for b in backends))
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise UserError(f'unsupported backend {", ".join(map(repr, bad))}: '
                        f'choose from {" ".join(BACKENDS)}')
    if precision not in PRECISIONS:
        raise UserError(f'unsupported precision {precision!r}: choose from '
                        f'{" ".join(PRECISIONS)}')
    if target not in TARGETS:
        raise UserError(f'unsupported deployment target {target!r}: choose '
                        f'from {" ".join(TARGETS)} (ML programs need iOS15+)')
    if compute_units not in COMPUTE_UNITS:
        raise UserError(f'unknown compute units {compute_units!r}: choose '
                        f'from {" ".join(COMPUTE_UNITS)}')
    if int(runs) < 1:
        raise UserError(f'--runs must be >= 1, got {runs}')
    if input_size is not None and (len(input_size) != 2
                                   or min(input_size) < 32):
        raise UserError(f'--input-size takes H W >= 32, got {input_size}')
    return backends


# ------------------------------------------------------------------ export
def _export_target(name: str, unfused: Optional[nn.Module], fused: nn.Module,
                   x: torch.Tensor, work_dir: str, backends: List[str],
                   runs: int, precision: str, target: str,
                   compute_units: str, expected: Optional[dict],
                   log) -> dict:
    """Export one network (``backbone`` or ``model``) to every backend, read
    its ops, compare outputs and time it (``unfused=None``: the model was
    built fused, there is no train-time model to time)."""
    shape = tuple(x.shape)
    section: Dict[str, object] = {'coreml': None, 'onnx': None}
    if 'coreml' in backends:
        path = osp.join(work_dir, f'{name}.mlpackage')
        log(f'Core ML: converting the fused {name} ({precision}, {target})')
        export_coreml(fused, x, path, precision, target)
        ops = coreml_ops(path)
        coreml = dict(path=path, precision=precision,
                      minimum_deployment_target=target, ops=ops)
        if expected is not None:
            ok, why = branch_free(ops, expected, 'conv', 'add')
            coreml.update(branch_free=ok, chain=why)
        coreml['max_abs_diff'] = coreml_max_abs_diff(path, fused, x)
        latency, note = coreml_latency(path, shape, runs, compute_units)
        coreml.update(latency_ms=latency, compute_units=compute_units,
                      note=note)
        section['coreml'] = coreml
    if 'onnx' in backends:
        path = osp.join(work_dir, f'{name}.onnx')
        log(f'ONNX: exporting the fused {name}')
        export_onnx(fused, x, path)
        ops = onnx_ops(path)
        session = onnx_session(path)
        outputs = onnx_run(session, x.numpy())
        ref = forward_tensors(fused, x)
        if len(outputs) != len(ref):
            raise RuntimeError(f'{path} has {len(outputs)} outputs, PyTorch '
                               f'{len(ref)}')
        diff = max(float(np.abs(o - r.numpy()).max())
                   for o, r in zip(outputs, ref))
        scale = max(float(r.abs().max()) for r in ref)
        onnx = dict(path=path, ops=ops, max_abs_diff=diff,
                    max_rel_diff=diff / max(scale, 1e-12),
                    max_abs_output=scale)
        if expected is not None:
            ok, why = branch_free(ops, expected, 'Conv', 'Add')
            onnx.update(branch_free=ok, chain=why)
        log(f'ONNX Runtime: timing {runs} runs')
        onnx['latency_ms'] = onnx_latency(session, shape, runs)
        section['onnx'] = onnx
    log(f'PyTorch: timing {runs} runs' + (', unfused and fused'
                                           if unfused is not None else ''))
    # in alternating blocks: the fusion speed-up is a ratio of the two
    runners = dict(fused=torch_runner(fused, shape))
    if unfused is not None:
        runners['unfused'] = torch_runner(unfused, shape)
    latency = interleaved_latency(runners, runs)
    section['torch'] = dict(latency_ms=dict(unfused=latency.get('unfused'),
                                            fused=latency['fused']))
    return section


def deploy(config: Union[str, Config],
           checkpoint: Optional[str] = None,
           work_dir: Optional[str] = None,
           backends: Sequence[str] = BACKENDS,
           runs: int = 1000,
           input_size: Optional[Sequence[int]] = None,
           full_model: bool = False,
           precision: str = 'fp32',
           target: str = 'iOS15',
           compute_units: str = 'all',
           cfg_options: Optional[dict] = None,
           verbose: bool = True) -> dict:
    """Fuse, export, check and time a config's model; see the module doc.

    Args:
        config: Config path (or a loaded ``mmengine.Config``).
        checkpoint: Trained weights (unfused, or fused by
            ``tools/reparameterize.py``); ``None``: random weights, with a
            warning, BN statistics estimated from random inputs.
        work_dir: Output folder (default ``work_dirs/deploy/<config>``).
        backends: Any of ``'coreml'``, ``'onnx'``. PyTorch is always timed.
        runs: Timed runs per backend after one warm-up run (paper: 1000).
        input_size: ``(H, W)``; default the config's input size.
        full_model: Also export and time the whole network without
            post-processing (``mode='tensor'``).
        precision: Core ML compute precision, ``'fp32'`` or ``'fp16'``.
        target: Core ML minimum deployment target, ``'iOS15'``..``'iOS18'``.
        compute_units: Core ML compute units for timing on macOS:
            ``'all'``, ``'cpu_and_ne'``, ``'cpu_only'``, ``'cpu_and_gpu'``.
        cfg_options: Overrides merged into the config.
        verbose: Print progress to stdout and warnings to stderr.

    Returns:
        The report (also written to ``work_dir/report.json``).

    Raises:
        UserError: Bad input (unknown config, checkpoint of another
            variant, unsupported backend/precision/target).
        DeployCheckFailed: Branches remain in the exported backbone, or
            fused/ONNX outputs differ from PyTorch beyond ``RTOL``; the
            report is written first.
    """
    def log(msg):
        if verbose:
            print(f'[deploy] {msg}', flush=True)

    backends = _validate(backends, precision, target, compute_units, runs,
                         input_size)
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)  # the caller's config stays as it was
        config_name = config.filename or '<Config>'
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    else:
        cfg, config_name = load_config(config, cfg_options), config
    if 'coreml' in backends:
        _coremltools()  # fail early when it is not installed
    if 'onnx' in backends:
        require_onnx()
    notes: List[str] = []
    if checkpoint is not None and osp.isfile(checkpoint) and \
            _checkpoint_is_fused(checkpoint):
        cfg.model.backbone.deploy = True  # built fused, loads strictly
    shape = input_shape_from_config(cfg)
    if input_size is not None:
        shape = (1, 3, int(input_size[0]), int(input_size[1]))
    torch.manual_seed(0)
    model = build_model(cfg, checkpoint)
    backbone = _backbone_of(model)
    prefused = backbone.is_fused  # a fused checkpoint or deploy=True config
    if prefused:
        notes.append('model already fused (fused checkpoint or deploy=True '
                     'config): no train-time model to compare or time')
    if checkpoint is None:
        warning = ('no checkpoint: exporting random weights (BN statistics '
                   'estimated from random inputs); op counts and latency are '
                   'valid, outputs are not')
        notes.append(warning)
        if verbose:
            print(f'warning: {warning}', file=sys.stderr, flush=True)
        calibrate_bn(model, shape)

    work_dir = work_dir or osp.join(
        'work_dirs', 'deploy', osp.splitext(osp.basename(config_name))[0])
    os.makedirs(work_dir, exist_ok=True)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))

    log(f'fusing {type(model).__name__} (reparameterize) and checking it on '
        f'a random {shape} input')
    fused = reparameterize(model)
    check = compare_models(fused, model, x)
    diff, scale = check['max_abs_diff'], check['max_abs_output']
    remaining = count_unfused(fused)
    report: Dict[str, object] = dict(
        config=config_name, checkpoint=checkpoint, input_shape=list(shape),
        arch=backbone.arch_name, notes=notes, machine=machine(),
        fusion=dict(max_abs_diff=diff, max_rel_diff=diff / max(scale, 1e-12),
                    max_abs_output=scale, unfused_blocks=remaining,
                    fused_blocks=len(backbone.blocks())))

    fused_bb = _whole_backbone(_backbone_of(fused))
    unfused_bb = None if prefused else _whole_backbone(backbone)
    expected = chain_expectation(fused_bb)
    report['expected_chain'] = expected
    report.update(_export_target('backbone', unfused_bb, fused_bb, x,
                                 work_dir, backends, int(runs), precision,
                                 target, compute_units, expected, log))
    if full_model:
        report['full_model'] = _export_target(
            'model', None if prefused else model, fused, x, work_dir, backends, int(runs),
            precision, target, compute_units, None, log)

    failures = _failures(report)
    report['branch_free'] = remaining == 0 and all(
        report[b].get('branch_free', True) for b in backends)
    report['checks_passed'] = not failures
    report['failures'] = failures
    path = osp.join(work_dir, 'report.json')
    with open(path, 'w') as f:
        json.dump(report, f, indent=2)
    report['report_path'] = path
    if failures:
        raise DeployCheckFailed('; '.join(failures) + f' (report: {path})',
                                report)
    return report


def _too_far(section: dict) -> bool:
    return section['max_abs_diff'] > RTOL * max(section['max_abs_output'], 1.0)


def _failures(report: dict) -> List[str]:
    out = []
    allowed = f'allowed {RTOL:g} x max(largest output, 1)'
    fusion = report['fusion']
    if fusion['unfused_blocks']:
        out.append(f'{fusion["unfused_blocks"]} MobileOne blocks still have '
                   f'branches after reparameterize')
    if _too_far(fusion):
        out.append(f'fused vs unfused outputs differ: max|diff| '
                   f'{fusion["max_abs_diff"]:.3g}, largest output '
                   f'{fusion["max_abs_output"]:.3g} ({allowed})')
    for backend in BACKENDS:
        section = report.get(backend)
        if section and section.get('branch_free') is False:
            out.append(f'{backend} backbone is not branch-free: '
                       f'{section["chain"]}')
    for name, section in (('backbone', report),
                          ('full model', report.get('full_model') or {})):
        onnx = section.get('onnx')
        if onnx and _too_far(onnx):
            out.append(f'ONNX Runtime vs PyTorch ({name}): max|diff| '
                       f'{onnx["max_abs_diff"]:.3g}, largest output '
                       f'{onnx["max_abs_output"]:.3g} ({allowed})')
    return out


# ------------------------------------------------------------------ table
def _fmt(stats: Optional[dict]) -> str:
    if not stats:
        return '        -        -        -'
    return f'{stats["min"]:9.2f} {stats["median"]:8.2f} {stats["p90"]:8.2f}'


def _verdict(section: dict) -> str:
    verdict = 'branch-free' if section['branch_free'] else 'NOT branch-free'
    return f'{verdict}: {section["chain"]}'


def format_report(report: dict) -> str:
    """The short terminal table of a report."""
    lines = [f'{report["config"]}  input {tuple(report["input_shape"])}  '
             f'MobileOne-{report["arch"].upper()}']
    lines += [f'note: {note}' for note in report['notes']]
    fusion = report['fusion']
    lines.append(f'fusion: max|fused - unfused| = {fusion["max_abs_diff"]:.3g} '
                 f'(relative {fusion["max_rel_diff"]:.2g}); '
                 f'{fusion["unfused_blocks"]} unfused blocks')
    for name, section in (('backbone', report),
                          ('model', report.get('full_model'))):
        if not section:
            continue
        coreml, onnx = section.get('coreml'), section.get('onnx')
        if coreml:
            ops = ', '.join(f'{k} {v}' for k, v in coreml['ops'].items()
                            if k != 'const')
            lines.append(f'{name} Core ML ops: {ops}')
            if 'chain' in coreml:
                lines.append(f'  {_verdict(coreml)}')
        if onnx:
            lines.append(f'{name} ONNX: max|ORT - PyTorch| = '
                         f'{onnx["max_abs_diff"]:.3g} (relative '
                         f'{onnx["max_rel_diff"]:.2g})')
            if 'chain' in onnx:
                lines.append(f'  {_verdict(onnx)}')
        lines.append(f'{name + " latency (ms)":<26}{"min":>9} {"median":>8} '
                     f'{"p90":>8}')
        rows = []
        if coreml:
            rows.append((f'Core ML ({coreml["compute_units"]})',
                         coreml['latency_ms']))
        if onnx:
            rows.append(('ONNX Runtime (fused)', onnx['latency_ms']))
        torch_ms = section['torch']['latency_ms']
        rows += [('PyTorch (unfused)', torch_ms['unfused']),
                 ('PyTorch (fused)', torch_ms['fused'])]
        lines += [f'  {label:<24}{_fmt(stats)}' for label, stats in rows]
        if coreml and coreml['latency_ms'] is None:
            lines.append(f'  note: {coreml["note"]}')
    runs = report['torch']['latency_ms']['fused']['runs']
    lines.append(f'{runs} runs after 1 warm-up (paper Sec. 3.5: the minimum '
                 f'is the reported figure); report: {report.get("report_path")}')
    return '\n'.join(lines)
