"""Whole-model fusion: one duck-typed walk over any model, and a trained
checkpoint turned into a checked, fused one."""
import copy
import os.path as osp
from typing import Optional

import torch
import torch.nn as nn

from mobileone_mm.apis import build_model, input_shape_from_config, load_config
from mobileone_mm.utils.atomic import save_torch
from mobileone_mm.models.backbones.mobileone import MobileOneBlock
from mobileone_mm.utils.errors import UserError
from .compare import RTOL, compare_models


class FusionCheckFailed(RuntimeError):
    """The fused model's outputs differ from the unfused model's; nothing was
    written. ``check`` is the comparison (``compare.compare_models``)."""

    def __init__(self, message: str, check: dict) -> None:
        super().__init__(message)
        self.check = check


def reparameterize(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fuse every re-parameterizable block anywhere inside ``model``.

    Any module with a ``switch_to_deploy()`` method (our MobileOne blocks and
    backbone, and the re-parameterizable blocks of mmpretrain/mmdet) is
    switched, so this serves classifiers, detectors and segmentors alike.
    ``switch_to_deploy`` is idempotent, so visiting a backbone and then its
    blocks is harmless. The model keeps its dtype, device and train/eval mode;
    fusion is exact only with fixed BN statistics, i.e. for ``model.eval()``.

    Args:
        model: Any ``nn.Module``.
        inplace: Fuse ``model`` itself instead of a deep copy.

    Returns:
        The fused model (``model`` itself when ``inplace``).
    """
    if not inplace:
        model = copy.deepcopy(model)
    for module in list(model.modules()):
        switch = getattr(module, 'switch_to_deploy', None)
        if callable(switch):
            switch()
    return model


def count_unfused(model: nn.Module) -> int:
    """How many MobileOne blocks in ``model`` still have train-time branches.

    Example:
        >>> block = MobileOneBlock(4, 4, 3, num_conv_branches=2)
        >>> count_unfused(block), count_unfused(reparameterize(block))
        (1, 0)
    """
    return sum(1 for m in model.modules()
               if isinstance(m, MobileOneBlock) and not m.is_fused)


_save_atomically = save_torch


def describe(check: dict) -> str:
    """One line for a :func:`fuse_checkpoint` comparison.

    Example:
        >>> print(describe(dict(input_shape=[1, 3, 8, 8], max_abs_diff=2e-7,
        ...                     max_abs_output=3.5)))
        fused vs unfused on (1, 3, 8, 8): max |diff| = 2e-07 (largest output 3.5)
    """
    return (f'fused vs unfused on {tuple(check["input_shape"])}: max |diff| = '
            f'{check["max_abs_diff"]:.3g} (largest output '
            f'{check["max_abs_output"]:.3g})')


def fuse_checkpoint(config: str, checkpoint: str, out: str,
                    rtol: float = RTOL,
                    cfg_options: Optional[dict] = None,
                    verbose: bool = False) -> dict:
    """Fuse a trained checkpoint and write it as a deploy checkpoint.

    The config's model is built and ``checkpoint`` loaded strictly (a
    checkpoint of another variant is an error), fused with
    :func:`reparameterize` and compared with the unfused model on a random
    input at the config's size. Only when the two agree is ``out`` written,
    atomically (a temporary file, then ``os.replace``). Load the result with
    ``model.backbone.deploy=True``.

    Args:
        config: Config path.
        checkpoint: The trained (unfused) weights.
        out: Where to write the fused checkpoint; never ``checkpoint``.
        rtol: Allowed max|fused - unfused| / max(largest output, 1).
        cfg_options: Overrides merged into the config.
        verbose: Print the comparison (:func:`describe`).

    Returns:
        The comparison (``max_abs_diff``, ``max_abs_output``,
        ``max_rel_diff``, ``ok``) with ``input_shape`` and ``out``.

    Raises:
        UserError: ``out`` is ``checkpoint``; unknown config; a checkpoint
            that does not fit the config.
        FusionCheckFailed: The fused outputs differ; nothing was written.
    """
    if osp.exists(out) and osp.exists(checkpoint) and \
            osp.samefile(out, checkpoint):
        raise UserError(f'refusing to overwrite the input {checkpoint}')
    cfg = load_config(config, cfg_options)
    model = build_model(cfg, checkpoint)
    fused = reparameterize(model)
    shape = input_shape_from_config(cfg)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    check = dict(compare_models(fused, model, x, rtol),
                 input_shape=list(shape), out=out)
    if verbose:
        print(describe(check), flush=True)
    if not check['ok']:
        raise FusionCheckFailed(
            f'fused outputs differ by {check["max_abs_diff"]:.3g} > {rtol} x '
            f'{max(check["max_abs_output"], 1.0):.3g}; nothing written', check)
    meta = dict(fused=True, config=osp.basename(config),
                src=osp.basename(checkpoint))
    _save_atomically(dict(state_dict=fused.state_dict(), meta=meta), out)
    return check
