"""The deploy tool (``tools/deploy.py``) as a Python API.

:func:`deploy` builds a config's model, fuses it with
:func:`mobileone_mm.reparameterize`, checks fused against unfused, exports the
backbone (and with ``full_model`` the complete detector or segmentor, image in
and decoded predictions out, checked against mmdet/mmseg) to a Core ML ML
program and to ONNX, reads the exported programs' operations,
checks that the fused backbone is a plain chain, times every backend with the
paper's protocol (Sec. 3.5) and writes ``report.json``.

This module only orchestrates: the backends are ``coreml`` and ``onnx``, the
chain proof ``chain_check``, the model ``model_setup``, the complete model
``full_model``, the verdicts and the table ``report``.
"""
import copy
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config

from mobileone_mm.apis import input_shape_from_config, load_config
from mobileone_mm.utils.errors import UserError
from mobileone_mm.utils.machine import machine
from .chain_check import branch_free, chain_expectation
from .compare import compare_models
from .coreml import (COMPUTE_UNITS, PRECISIONS, TARGETS, coreml_compare,
                     coreml_latency, coreml_ops, export_coreml,
                     import_coremltools)
from .full_model import full_model_section
from .latency import interleaved_latency, torch_runner
from .model_setup import backbone_of, build_for_deploy, whole_backbone
from .onnx import (export_onnx, onnx_compare, onnx_latency, onnx_ops,
                   onnx_session, require_onnx)
from .report import conclude, write_report
from .reparameterize import count_unfused, reparameterize

__all__ = ['BACKENDS', 'DeployCheckFailed', 'DeployOptions', 'deploy']

BACKENDS = ('coreml', 'onnx')
# The keys of compare.compare_outputs that a report keeps.
_DIFF_KEYS = ('max_abs_diff', 'max_rel_diff', 'max_abs_output')


class DeployCheckFailed(RuntimeError):
    """An export was written but a check failed (branches remain, or outputs
    differ); ``report`` is the report, already saved."""

    def __init__(self, message: str, report: dict) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class DeployOptions:
    """What to export and how; checked (and normalized) when made, the one
    place user options are validated.

    Attributes:
        backends: Any of ``'coreml'``, ``'onnx'``. PyTorch is always timed.
        runs: Timed runs per backend after one warm-up run (paper: 1000).
        precision: Core ML compute precision, ``'fp32'`` or ``'fp16'``.
        target: Core ML minimum deployment target, ``'iOS15'``..``'iOS18'``.
        compute_units: Core ML compute units for timing on macOS:
            ``'all'``, ``'cpu_and_ne'``, ``'cpu_only'``, ``'cpu_and_gpu'``.
        input_size: ``(H, W)``; default the config's input size.
        full_model: Also export and time the whole model: a detector or
            segmentor complete with decoding (and NMS or argmax in Core ML,
            :mod:`.full_model`), a classifier as its network.

    Example:
        >>> DeployOptions(backends=['ONNX', 'onnx'], runs='5').backends
        ('onnx',)
        >>> DeployOptions(precision='int8')  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mobileone_mm.utils.errors.UserError: unsupported precision 'int8': ...
    """
    backends: Sequence[str] = BACKENDS
    runs: int = 1000
    precision: str = 'fp32'
    target: str = 'iOS15'
    compute_units: str = 'all'
    input_size: Optional[Sequence[int]] = None
    full_model: bool = False

    def __post_init__(self) -> None:
        self.backends = tuple(dict.fromkeys(b.lower() for b in self.backends))
        bad = [b for b in self.backends if b not in BACKENDS]
        if bad:
            raise UserError(f'unsupported backend '
                            f'{", ".join(map(repr, bad))}: choose from '
                            f'{" ".join(BACKENDS)}')
        choices = (('precision', PRECISIONS, 'precision', ''),
                   ('target', TARGETS, 'deployment target',
                    ' (ML programs need iOS15+)'),
                   ('compute_units', COMPUTE_UNITS, 'compute units', ''))
        for field, allowed, what, why in choices:
            value = getattr(self, field)
            if value not in allowed:
                raise UserError(f'unsupported {what} {value!r}: choose from '
                                f'{" ".join(allowed)}{why}')
        self.runs = int(self.runs)
        if self.runs < 1:
            raise UserError(f'--runs must be >= 1, got {self.runs}')
        if self.input_size is not None:
            if len(self.input_size) != 2 or min(self.input_size) < 32:
                raise UserError(f'--input-size takes H W >= 32, got '
                                f'{self.input_size}')
            self.input_size = tuple(int(s) for s in self.input_size)

    def input_shape(self, cfg: Config) -> Tuple[int, int, int, int]:
        """``(1, 3, H, W)``: ``input_size``, else the config's size."""
        if self.input_size is None:
            return input_shape_from_config(cfg)
        return (1, 3) + tuple(self.input_size)

    def require_backends(self) -> None:
        """Stop early, before any work, when a backend's library is missing."""
        if 'coreml' in self.backends:
            import_coremltools()
        if 'onnx' in self.backends:
            require_onnx()


def _logger(verbose: bool) -> Callable[[str], None]:
    def log(msg: str) -> None:
        if verbose:
            print(f'[deploy] {msg}', flush=True)

    return log


def _config(config: Union[str, Config],
            cfg_options: Optional[dict]) -> Tuple[Config, str]:
    if not isinstance(config, Config):
        return load_config(config, cfg_options), config
    cfg = copy.deepcopy(config)  # the caller's config stays as it was
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg, config.filename or '<Config>'


def _chain(section: dict, ops: Dict[str, int], expected: Optional[dict],
           conv: str, add: str) -> None:
    if expected is not None:
        ok, why = branch_free(ops, expected, conv, add)
        section.update(branch_free=ok, chain=why)


@dataclass
class _Exporter:
    """Exports networks to the requested backends, checks and times them."""
    options: DeployOptions
    work_dir: str
    x: torch.Tensor
    log: Callable[[str], None]

    def coreml(self, name: str, fused: nn.Module,
               expected: Optional[dict]) -> dict:
        o = self.options
        path = osp.join(self.work_dir, f'{name}.mlpackage')
        self.log(f'Core ML: converting the fused {name} ({o.precision}, '
                 f'{o.target})')
        export_coreml(fused, self.x, path, o.precision, o.target)
        section = dict(path=path, precision=o.precision,
                       minimum_deployment_target=o.target,
                       ops=coreml_ops(path))
        _chain(section, section['ops'], expected, 'conv', 'add')
        check = coreml_compare(path, fused, self.x)
        section['max_abs_diff'] = None if check is None else \
            check['max_abs_diff']
        latency, note = coreml_latency(path, tuple(self.x.shape), o.runs,
                                       o.compute_units)
        section.update(latency_ms=latency, compute_units=o.compute_units,
                       note=note)
        return section

    def onnx(self, name: str, fused: nn.Module,
             expected: Optional[dict]) -> dict:
        path = osp.join(self.work_dir, f'{name}.onnx')
        self.log(f'ONNX: exporting the fused {name}')
        export_onnx(fused, self.x, path)
        session = onnx_session(path)
        check = onnx_compare(session, fused, self.x)
        section = dict(path=path, ops=onnx_ops(path),
                       **{k: check[k] for k in _DIFF_KEYS})
        _chain(section, section['ops'], expected, 'Conv', 'Add')
        self.log(f'ONNX Runtime: timing {self.options.runs} runs')
        section['latency_ms'] = onnx_latency(session, tuple(self.x.shape),
                                             self.options.runs)
        return section

    def pytorch(self, fused: nn.Module,
                unfused: Optional[nn.Module]) -> dict:
        runs, shape = self.options.runs, tuple(self.x.shape)
        self.log(f'PyTorch: timing {runs} runs' + (
            ', unfused and fused' if unfused is not None else ''))
        # in alternating blocks: the fusion speed-up is a ratio of the two
        runners = dict(fused=torch_runner(fused, shape))
        if unfused is not None:
            runners['unfused'] = torch_runner(unfused, shape)
        latency = interleaved_latency(runners, runs)
        return dict(latency_ms=dict(unfused=latency.get('unfused'),
                                    fused=latency['fused']))

    def target(self, name: str, fused: nn.Module, unfused: Optional[nn.Module],
               expected: Optional[dict] = None) -> dict:
        """Export one network (``backbone`` or ``model``) to every backend,
        read its ops, compare outputs and time it (``unfused=None``: the
        model was built fused, there is no train-time model to time)."""
        backends = self.options.backends
        return dict(
            coreml=self.coreml(name, fused, expected)
            if 'coreml' in backends else None,
            onnx=self.onnx(name, fused, expected)
            if 'onnx' in backends else None,
            torch=self.pytorch(fused, unfused))


def _fusion(model: nn.Module, fused: nn.Module, x: torch.Tensor) -> dict:
    check = compare_models(fused, model, x)
    return dict({k: check[k] for k in _DIFF_KEYS},
                unfused_blocks=count_unfused(fused),
                fused_blocks=len(backbone_of(model).blocks()))


def _export(exporter: _Exporter, model: nn.Module, report: dict,
            full_model: Optional[Config]) -> None:
    """Fuse ``model``, check it and export its backbone (and with
    ``full_model``, the config, the whole model) into ``report``."""
    shape = tuple(exporter.x.shape)
    exporter.log(f'fusing {type(model).__name__} (reparameterize) and '
                 f'checking it on a random {shape} input')
    fused = reparameterize(model)
    report['fusion'] = _fusion(model, fused, exporter.x)
    prefused = backbone_of(model).is_fused  # fused checkpoint/deploy config
    fused_bb = whole_backbone(backbone_of(fused))
    unfused_bb = None if prefused else whole_backbone(backbone_of(model))
    if unfused_bb is not None:  # timed as the paper's train-time network
        for block in unfused_bb.blocks():
            block.branch_impl = 'reference'
    report['expected_chain'] = expected = chain_expectation(fused_bb)
    report.update(exporter.target('backbone', fused_bb, unfused_bb, expected))
    if full_model:
        report['full_model'] = full_model_section(exporter, full_model, model,
                                                  fused, prefused)


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
            ``tools/reparameterize.py``), read as data (weights only);
            ``None``: random weights, with a warning, BN statistics
            estimated from random inputs.
        work_dir: Output folder (default ``work_dirs/deploy/<config>``).
        backends, runs, input_size, full_model, precision, target,
            compute_units: What to export and how (:class:`DeployOptions`).
        cfg_options: Overrides merged into the config.
        verbose: Print progress to stdout and warnings to stderr.

    Returns:
        The report (also written to ``work_dir/report.json``).

    Raises:
        UserError: Bad input (unknown config, unreadable checkpoint or one
            of another variant, unsupported backend/precision/target).
        DeployCheckFailed: Branches remain in the exported backbone, or
            fused/ONNX outputs differ from PyTorch beyond ``compare.RTOL``;
            the report is written first.
    """
    options = DeployOptions(backends, runs, precision, target, compute_units,
                            input_size, full_model)
    cfg, config_name = _config(config, cfg_options)
    options.require_backends()
    shape = options.input_shape(cfg)
    model, notes = build_for_deploy(cfg, checkpoint, shape, verbose)
    work_dir = work_dir or osp.join(
        'work_dirs', 'deploy', osp.splitext(osp.basename(config_name))[0])
    os.makedirs(work_dir, exist_ok=True)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    report: Dict[str, object] = dict(
        config=config_name, checkpoint=checkpoint, input_shape=list(shape),
        arch=backbone_of(model).arch_name, notes=notes, machine=machine(),
        backends=list(options.backends))
    exporter = _Exporter(options, work_dir, x, _logger(verbose))
    _export(exporter, model, report, cfg if options.full_model else None)
    path = write_report(conclude(report), work_dir)
    if report['failures']:
        raise DeployCheckFailed('; '.join(report['failures'])
                                + f' (report: {path})', report)
    return report
