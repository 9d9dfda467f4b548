"""The one interface every deploy backend implements.

A backend turns a fused torch model into its own program and runs it; the
deploy tool, the report, the complete-model export, quantization and the
benchmark only ask backends by name (:func:`mobileone_mm.deploy.backends.
get_backend`) and never test which one they hold. What a backend must do:

- ``require()``: a one-line :class:`UserError` naming the fix when its
  libraries are missing (``missing()`` returns that line, or ``None``);
- ``export(model, example, stem, options)``: write the fused network for
  the static shape of ``example`` next to ``stem`` and return the main file;
- ``ops(path)``: the exported program's operations, counted, which
  ``chain_counts`` turns into convolutions and additions (the branch-free
  proof of :mod:`mobileone_mm.deploy.chain_check`);
- ``run(path, x)``: the program's outputs on ``x`` as arrays, in the order
  of :func:`mobileone_mm.deploy.compare.flatten` (the same as PyTorch's
  forward); ``cannot_run()`` says why not where this OS cannot run it;
- ``runner(path, input_shape, threads)``: one inference on a preallocated
  input, for the shared interleaved timing protocol
  (:func:`mobileone_mm.deploy.latency.interleaved_latency`);
- ``complete(exporter, graph, image, labels)``: the complete detector or
  segmentor (:mod:`mobileone_mm.deploy.postprocess`) as this backend holds
  it, as a report section; ``None`` from a backend that cannot hold one.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from mobileone_mm.utils.errors import UserError
from ..chain_check import count_ops


class Backend:
    """Base class of the backends; see the module doc."""

    #: The name every tool uses (``--backends``, ``--backend``, report keys).
    name: str = ''
    #: How people write it.
    title: str = ''
    #: Older spellings still accepted, with a one-line deprecation note.
    aliases: Tuple[str, ...] = ()
    #: The program's names of a convolution and of an addition.
    conv_ops: Tuple[str, ...] = ()
    add_ops: Tuple[str, ...] = ()
    #: The package(s) to import, and the fix when one is missing.
    modules: Tuple[str, ...] = ()
    install_hint: str = 'pip install "mobileone_mm[deploy]"'
    #: What ``tools/quantize.py`` does for this backend, or ``None`` ...
    quantization: Optional[str] = None
    #: ... and then why not, with what to do instead.
    no_quantization: str = ''
    #: Where this backend's complete detector differs from mmdet by design.
    differences: List[str] = []

    def require(self) -> None:
        """Raise a one-line :class:`UserError` naming the fix when the
        backend's libraries (``modules``) are missing."""
        from importlib.util import find_spec
        absent = [m for m in self.modules if find_spec(m) is None]
        if absent:
            raise UserError(f'the {self.name} backend needs '
                            f'{" and ".join(absent)}: {self.install_hint}, '
                            f'or leave {self.name} out of --backends')

    def missing(self) -> Optional[str]:
        """``None`` if the backend's libraries import, else the fix."""
        try:
            self.require()
        except UserError as err:
            return str(err)
        return None

    def describe(self, options) -> dict:
        """Settings recorded next to the exported program (e.g. Core ML's
        precision and deployment target)."""
        return {}

    def export(self, model: nn.Module, example: torch.Tensor, stem: str,
               options=None) -> str:
        raise NotImplementedError

    def ops(self, path: str) -> Dict[str, int]:
        raise NotImplementedError

    def chain_counts(self, ops: Dict[str, int]) -> Tuple[int, int]:
        """``(convolutions, additions)`` among ``ops``."""
        return count_ops(ops, self.conv_ops), count_ops(ops, self.add_ops)

    def cannot_run(self) -> Optional[str]:
        """Why this OS cannot run the program, or ``None``."""
        return None

    def run(self, path: str, x: torch.Tensor) -> List[np.ndarray]:
        raise NotImplementedError

    def runner(self, path: str, input_shape: Sequence[int],
               threads: int = 0) -> Callable[[], object]:
        """One inference on a preallocated input, ``threads`` CPU threads
        (0: the runtime's default)."""
        raise NotImplementedError

    def checks(self, path: str, model: nn.Module,
               x: torch.Tensor) -> dict:
        """Extra checks this backend records (e.g. ncnn's fp16 variant)."""
        return {}

    def complete(self, exporter, graph: nn.Module, image: torch.Tensor,
                 labels: Sequence[str]) -> Optional[dict]:
        """The complete model's section (``path``, ``ops``, ...), or
        ``None``: not held here. Where this OS runs it, ``predictions`` holds
        its outputs on ``image`` for the checks against mmdet/mmseg:
        ``('scores_boxes', (confidence, coordinates))`` (before NMS),
        ``('detections', dict(labels, scores, bboxes))`` (after NMS, boxes
        in input pixels) or ``('class_map', array)``; ``network_path`` a
        program of the same network without post-processing, timed beside
        it for the post-processing's share."""
        return None

    def __repr__(self) -> str:
        return f'<{type(self).__name__} backend {self.name!r}>'
