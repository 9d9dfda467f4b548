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
from torch import Tensor

from mobileone_mm.utils.errors import UserError
from . import fit
from .formats import ConversionError, convert, detect_format, unwrap
from .loaders import load_any
from .mismatch import mismatch_summary, state_dict_mismatch


def read_state_dict(path_or_url: str) -> Dict[str, Tensor]:
    """The flat state dict in a checkpoint file (``torch.save`` or
    ``.safetensors``, read as data) or URL (through mmengine's loader).

    Raises:
        ConversionError: the file is missing, not data only, or holds no
            state dict; the message starts with ``path_or_url``.
    """
    checkpoint = load_any(path_or_url)
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


def _does_not_fit(backbone: nn.Module, path: str, state: Dict[str, Tensor],
                  missing: list, wrong: list) -> str:
    """The fit check's one-line message (:func:`fit.fit_error`'s style) for
    a ``Pretrained`` file: the file's variant, the config's, the fix."""
    own = backbone.state_dict()
    want = f'a {fit.name(backbone.arch_name, backbone.is_fused)} backbone'
    found = fit.variant(state)
    detail = mismatch_summary(missing, [], wrong, own, state)
    head = (f'{path} does not fit the backbone of the config: {detail}. The '
            f'file holds {fit.describe(state)}; the config builds {want}. '
            f'Fix: ')
    if found is None:
        return head + ('point init_cfg at an Apple, mmpretrain, timm or '
                       'mobileone_mm MobileOne checkpoint')
    if not wrong and all('.se.' in k for k in missing):
        return head + 'set model.backbone.use_se=False (the file has no SE ' \
            'blocks)'
    arch, fused, complete = found
    fixes = [f for f in (
        fit.variant_fix(arch, backbone.arch_name.lower()),
        fit.structure_fix(fused, backbone.is_fused, 'the config', arch)) if f]
    if not complete or not fixes:
        return head + (f'use a complete {want[2:]} file '
                       f'(tools/convert_checkpoint.py checks one)')
    return head + '; '.join(fixes)


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
    fit.check_values(state, path_or_url, own)
    missing, _, wrong = state_dict_mismatch(own, state)
    if missing or wrong:
        raise UserError(_does_not_fit(backbone, path_or_url, state, missing,
                                      wrong))
    backbone.load_state_dict({k: v for k, v in state.items() if k in own},
                             strict=False)  # only num_batches_tracked may lack
