"""The backbone's ``init_cfg=dict(type='Pretrained', checkpoint=...)``: any
MobileOne file the converter knows, read as data, converted on load, and
loaded only when it gives every weight of the backbone.

mmengine's ``PretrainedInit`` knows one key layout and loads non-strictly:
a checkpoint of another variant, or a fused file for the train-time
network, becomes a partly random model with a few log warnings. Here the
same mistake stops with one message naming the file's variant, the
config's and the fix.
"""
from typing import Dict, Optional

import torch.nn as nn
from mmengine.runner import CheckpointLoader
from torch import Tensor

from mobileone_mm.utils.errors import UserError
from .formats import (ConversionError, closest_variant, convert,
                      detect_format, load_file, unwrap)
from .mismatch import few, mismatch_summary, state_dict_mismatch


def read_state_dict(path_or_url: str) -> Dict[str, Tensor]:
    """The flat state dict in a checkpoint file (``torch.save`` or
    ``.safetensors``, read as data) or URL (through mmengine's loader).

    Raises:
        ConversionError: the file is missing, not data only, or holds no
            state dict; the message starts with ``path_or_url``.
    """
    if '://' in path_or_url:
        checkpoint = CheckpointLoader.load_checkpoint(
            path_or_url, map_location='cpu', logger='silent')
    else:
        checkpoint = load_file(path_or_url)
    try:
        return unwrap(checkpoint)
    except ConversionError as err:
        raise ConversionError(f'{path_or_url}: {err}')


def _source_format(state: Dict[str, Tensor]) -> Optional[str]:
    """Apple, mmpretrain or timm; ``None`` for ours (or keys no format
    knows, which the comparison with the model then reports)."""
    try:
        return detect_format(state)
    except ConversionError:
        return None


def backbone_state_dict(path_or_url: str,
                        prefix: Optional[str] = None) -> Dict[str, Tensor]:
    """The backbone weights of a checkpoint, under our backbone's keys.

    Apple's (unfused or fused), mmpretrain's and timm's files are converted
    first (``convert.FORMATS``); ours are mmengine checkpoints with
    ``backbone.*`` keys or a bare backbone state dict. Then the keys that
    start with ``prefix`` (mmengine's meaning; a missing final ``.`` is
    added) are taken, without it; when no key has it, or without
    ``prefix``, the ``backbone.*`` keys are, if there are any.
    """
    state = read_state_dict(path_or_url)
    source = _source_format(state)
    if source is not None:
        state = convert(state, source, strict=False)
    for start in (prefix, 'backbone.'):
        start = start if not start or start.endswith('.') else start + '.'
        if start and any(k.startswith(start) for k in state):
            return {k[len(start):]: v for k, v in state.items()
                    if k.startswith(start)}
    return state


def _variant(arch: str, fused: bool) -> str:
    return f'MobileOne-{arch.upper()} ({"fused" if fused else "unfused"})'


def _fix(arch: str, fused: bool, want_arch: str, want_fused: bool) -> str:
    """How to load a file of the ``arch``/``fused`` variant."""
    fixes = []
    if arch != want_arch:
        fixes.append(f"use a MobileOne-{arch.upper()} config for it "
                     f"(model.backbone.arch='{arch}', with its widths in the "
                     f"neck/head), or a MobileOne-{want_arch.upper()} file")
    if fused and not want_fused:
        fixes.append(f'a fused file is for inference: build the backbone '
                     f'with deploy=True (the *_deploy config, or '
                     f'--cfg-options model.backbone.deploy=True); to train, '
                     f'use the unfused file (Apple: mobileone_{arch}_'
                     f'unfused.pth.tar)')
    if want_fused and not fused:
        fixes.append('build the backbone with deploy=False (the config '
                     'without _deploy) and fuse after loading '
                     '(tools/reparameterize.py)')
    return '; '.join(fixes)


def _does_not_fit(backbone: nn.Module, path: str, state: Dict[str, Tensor],
                  missing: list, wrong: list) -> str:
    """The one-line message: the file's variant, the config's, the fix."""
    arch, fused, (closest_missing, foreign, closest_wrong) = \
        closest_variant(state, type(backbone))
    if len(foreign) == len(state):
        return (f'{path} holds no MobileOne backbone weights (first keys: '
                f'{few(list(state))}). Fix: point init_cfg at an Apple, '
                f'mmpretrain, timm or mobileone_mm MobileOne checkpoint')
    want = _variant(backbone.arch_name, backbone.is_fused)
    detail = mismatch_summary(missing, [], wrong, backbone.state_dict(), state)
    if not wrong and all('.se.' in k for k in missing):
        return (f'{path} has no SE blocks but the config builds {want} with '
                f'them: {detail}. Fix: set model.backbone.use_se=False')
    fix = _fix(arch, fused, backbone.arch_name.lower(), backbone.is_fused)
    if closest_missing or closest_wrong or not fix:
        return (f'{path} is no complete MobileOne checkpoint (closest: '
                f'{_variant(arch, fused)}); the config builds {want}: '
                f'{detail}. Fix: use a complete {want} file '
                f'(tools/convert_checkpoint.py checks one)')
    return (f'{path} is a {_variant(arch, fused)} checkpoint, but the config '
            f'builds {want}: {detail}. Fix: {fix}')


def load_pretrained(backbone: nn.Module, path_or_url: str,
                    prefix: Optional[str] = None) -> None:
    """Load :func:`backbone_state_dict` into ``backbone`` (a MobileOne).

    Every parameter and buffer must come from the file; keys the backbone
    lacks (a classifier head, SE weights for ``use_se=False``) are left out.

    Raises:
        UserError: naming the file's variant, the backbone's and the fix;
            or (:class:`ConversionError`) an unreadable file.
    """
    state = backbone_state_dict(path_or_url, prefix)
    own = backbone.state_dict()
    missing, _, wrong = state_dict_mismatch(own, state)
    if missing or wrong:
        raise UserError(_does_not_fit(backbone, path_or_url, state, missing,
                                      wrong))
    backbone.load_state_dict({k: v for k, v in state.items() if k in own},
                             strict=False)  # only num_batches_tracked may lack
