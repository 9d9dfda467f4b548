"""The deploy tool (``tools/deploy.py``) as a Python API.

:func:`deploy` builds a config's model, fuses it with
:func:`mobileone_mm.reparameterize`, checks fused against unfused (the
unfused model run per branch), exports the backbone (and with
``full_model`` the complete detector or segmentor, image in and decoded
predictions out, checked against mmdet/mmseg) to every chosen backend,
reads the exported programs' operations, checks that the fused backbone is
a plain chain, compares each backend's outputs with PyTorch's, times every
backend side by side with the paper's protocol (Sec. 3.5) at each thread
count and writes ``report.json``.

This module only orchestrates: it asks the backends by name
(:mod:`.backends`), the chain proof is ``chain_check``, the model
``model_setup``, the complete model ``full_model``, the verdicts and the
table ``report``.
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
from .backends import BACKEND_NAMES, backend_names, get_backend
from .backends.coreml import COMPUTE_UNITS, PRECISIONS, TARGETS
from .chain_check import branch_free, chain_expectation
from .compare import DIFF_KEYS, compare_models, compare_outputs, \
    forward_tensors
from .full_model import full_model_section
from .fusion import count_unfused, reparameterize
from .latency import (interleaved_latency, torch_runner, torch_section,
                      torch_threads)
from .model_setup import backbone_of, build_for_deploy, whole_backbone
from .report import conclude, write_report

__all__ = ['BACKENDS', 'DeployCheckFailed', 'DeployOptions', 'deploy']

#: Every backend, the default of ``--backends``.
BACKENDS = BACKEND_NAMES
#: Thread counts every backend is timed with (a phone's big cores: 1-2).
THREADS = (1, 2)


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
        backends: Any of ``'onnxruntime'``, ``'coreml'``, ``'ncnn'``
            (``'onnx'``: the old name of ``'onnxruntime'``, with a note).
            PyTorch is always timed.
        runs: Timed runs per backend and thread count after one warm-up
            run (paper: 1000).
        precision: Core ML compute precision, ``'fp32'`` or ``'fp16'``.
        target: Core ML minimum deployment target, ``'iOS15'`` to ``'iOS18'``.
        compute_units: Core ML compute units for timing on macOS:
            ``'all'``, ``'cpu_and_ne'``, ``'cpu_only'``, ``'cpu_and_gpu'``.
        input_size: ``(H, W)``; default the config's input size.
        full_model: Also export and time the whole model: a detector or
            segmentor complete with decoding (and NMS or argmax where the
            backend holds them, :mod:`.full_model`), a classifier as its
            network.
        threads: The thread counts every backend is timed with, side by
            side (Core ML chooses its own).

    Example:
        >>> DeployOptions(backends=['ONNXRUNTIME', 'onnxruntime'],
        ...               runs='5').backends
        ('onnxruntime',)
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
    threads: Sequence[int] = THREADS

    def __post_init__(self) -> None:
        self.backends = backend_names(self.backends)
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
        self.threads = tuple(dict.fromkeys(int(t) for t in self.threads))
        if not self.threads or min(self.threads) < 1:
            raise UserError(f'--threads takes counts >= 1, got '
                            f'{self.threads}')
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
        for name in self.backends:
            get_backend(name).require()


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


def _chain(section: dict, backend, expected: Optional[dict]) -> None:
    """The branch-free verdict of an exported backbone from its op counts."""
    if expected is not None:
        ok, why = branch_free(section['ops'], expected, backend.conv_ops,
                              backend.add_ops)
        section.update(branch_free=ok, chain=why)


@dataclass
class _Exporter:
    """Exports networks to the requested backends, checks and times them."""
    options: DeployOptions
    work_dir: str
    x: torch.Tensor
    log: Callable[[str], None]

    def network(self, backend, name: str, fused: nn.Module,
                expected: Optional[dict]) -> dict:
        """Export ``fused`` to ``backend``, read its ops, prove the chain
        (``expected``), compare its outputs with PyTorch's where this OS
        runs it, and the backend's own extra checks."""
        self.log(f'{backend.title}: exporting the fused {name}')
        path = backend.export(fused, self.x, osp.join(self.work_dir, name),
                              self.options)
        section = dict(path=path, **backend.describe(self.options),
                       ops=backend.ops(path))
        _chain(section, backend, expected)
        why = backend.cannot_run()
        if why is not None:
            section.update(max_abs_diff=None, latency_ms=None, note=why)
            return section
        check = compare_outputs(backend.run(path, self.x),
                                forward_tensors(fused.eval(), self.x))
        section.update({k: check[k] for k in DIFF_KEYS})
        section.update(backend.checks(path, fused, self.x))
        return section

    def time(self, programs: Dict[str, Tuple[str, str]],
             torch_models: Dict[str, nn.Module],
             x: Optional[torch.Tensor] = None) -> Dict[str, Dict]:
        """Every program (key -> ``(backend name, path)``) and PyTorch model
        timed side by side with the paper's protocol, in alternating blocks
        (:func:`~.latency.interleaved_latency`), once per thread count.
        Returns key -> ``{'latency_ms': stats at the most threads,
        'latency_ms_by_threads': {threads: stats}}``."""
        shape = tuple((self.x if x is None else x).shape)
        runs = self.options.runs
        by_threads: Dict[str, Dict[str, dict]] = {
            k: {} for k in (*programs, *torch_models)}
        for n in self.options.threads:
            self.log(f'timing {runs} runs each of '
                     f'{", ".join(by_threads)} with {n} thread(s)')
            with torch_threads(n):
                runners = {key: get_backend(b).runner(path, shape, n)
                           for key, (b, path) in programs.items()}
                runners.update({key: torch_runner(model, shape)
                                for key, model in torch_models.items()})
                for key, stats in interleaved_latency(runners, runs).items():
                    by_threads[key][str(n)] = stats
        top = str(max(self.options.threads))
        return {key: dict(latency_ms=stats[top], latency_ms_by_threads=stats)
                for key, stats in by_threads.items()}

    def target(self, name: str, fused: nn.Module, unfused: Optional[nn.Module],
               expected: Optional[dict] = None) -> dict:
        """Export one network (``backbone`` or ``model``) to every backend,
        read its ops, compare outputs and time it next to PyTorch
        (``unfused=None``: the model was built fused, there is no train-time
        model to time)."""
        sections = {b: None for b in BACKENDS}  # None: not chosen
        sections.update({b: self.network(get_backend(b), name, fused,
                                         expected)
                         for b in self.options.backends})
        programs = {b: (b, sections[b]['path']) for b in self.options.backends
                    if get_backend(b).cannot_run() is None}
        models = dict(fused=fused)
        if unfused is not None:
            models['unfused'] = unfused
        timed = self.time(programs, models)
        for b in programs:
            sections[b].update(timed[b])
        sections['torch'] = torch_section(timed)
        return sections


def _fusion(model: nn.Module, fused: nn.Module, x: torch.Tensor) -> dict:
    check = compare_models(fused, model, x)
    return dict({k: check[k] for k in DIFF_KEYS},
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
           verbose: bool = True,
           threads: Sequence[int] = THREADS) -> dict:
    """Fuse, export, check and time a config's model; see the module doc.

    Args:
        config: Config path (or a loaded ``mmengine.Config``).
        checkpoint: Trained weights (unfused, or fused by
            ``tools/reparameterize.py``), read as data (weights only);
            ``None``: random weights, with a warning, BN statistics
            estimated from random inputs.
        work_dir: Output folder (default ``work_dirs/deploy/<config>``).
        backends: Backend names (:class:`DeployOptions` for this and the
            next seven).
        runs: Timed runs.
        input_size: ``(H, W)`` to export at.
        full_model: Also the complete model.
        precision: Core ML precision.
        target: Core ML deployment target.
        compute_units: Core ML compute units (macOS).
        threads: Thread counts to time with.
        cfg_options: Overrides merged into the config.
        verbose: Print progress to stdout and warnings to stderr.

    Returns:
        The report (also written to ``work_dir/report.json``).

    Raises:
        UserError: Bad input (unknown config, unreadable checkpoint or one
            of another variant, unsupported backend/precision/target).
        DeployCheckFailed: Branches remain in the exported backbone, or
            a backend's outputs differ from PyTorch beyond
            ``compare.RTOL``;
            the report is written first.
    """
    options = DeployOptions(backends, runs, precision, target, compute_units,
                            input_size, full_model, threads)
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
