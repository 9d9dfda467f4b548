"""Prove that converted weights are a complete MobileOne: find the variant
their keys and shapes describe, load them strictly, and write the converted
checkpoint only then (``tools/convert_checkpoint.py``)."""
import os
from typing import Dict, Optional

from torch import Tensor

from mobileone_mm.models.backbones.mobileone import MobileOne
from mobileone_mm.utils.atomic import save_torch
from mobileone_mm.utils.errors import UserError
from mobileone_mm.version import __version__
from .fit import check_values, describe, name
from .mismatch import mismatch_summary
from .formats import (ConversionError, preset_shapes, closest_variant,
                      convert, detect_format, load_file, unwrap)


def _backbone_part(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    return {k[len('backbone.'):]: v for k, v in state_dict.items()
            if k.startswith('backbone.')}


def validate(state_dict: Dict[str, Tensor]) -> dict:
    """Find the variant whose keys and shapes ``state_dict`` matches exactly.

    Returns:
        ``dict(arch=..., fused=..., num_classes=...)``.

    Raises:
        ConversionError: naming the missing/unexpected keys against the
            closest variant.
    """
    backbone = _backbone_part(state_dict)
    other = sorted(set(state_dict) - {f'backbone.{k}' for k in backbone}
                   - {'head.fc.weight', 'head.fc.bias'})
    if other:
        raise ConversionError(f'unexpected keys outside backbone/head: '
                              f'{other[:5]}')
    arch, fused, (missing, unexpected, wrong) = closest_variant(backbone, MobileOne)
    if missing or unexpected or wrong:
        closest = preset_shapes(MobileOne, arch, fused)
        raise ConversionError(
            f'does not fit any MobileOne variant: '
            f'{mismatch_summary(missing, unexpected, wrong, closest, backbone)}'
            f' against the closest, {name(arch, fused)}. The file holds '
            f'{describe(state_dict)}. Fix: convert a complete checkpoint (all '
            f'of the backbone\'s weights, e.g. Apple\'s '
            f'mobileone_{arch}_unfused.pth.tar), or pass --src-format if the '
            f'format was guessed wrong')
    # A real strict load, not only a key/shape comparison.
    model = MobileOne(arch, deploy=fused, init_cfg=None)
    check_values(backbone, 'the file', model.state_dict())
    model.load_state_dict(backbone, strict=True)
    num_classes = None
    if 'head.fc.weight' in state_dict:
        w = state_dict['head.fc.weight']
        if w.ndim != 2 or w.shape[1] != model.arch['widths'][-1]:
            raise ConversionError(
                f'head.fc.weight has shape {tuple(w.shape)}, expected '
                f'(num_classes, {model.arch["widths"][-1]}) for {arch}')
        num_classes = int(w.shape[0])
    return dict(arch=arch, fused=fused, num_classes=num_classes)


def convert_file(src: str, dst: str,
                 src_format: Optional[str] = None) -> dict:
    """Convert ``src`` to an mmengine checkpoint at ``dst``.

    Nothing is written unless the result validates; ``src`` is never
    overwritten.

    Returns:
        The checkpoint's ``meta``.
    """
    if os.path.exists(dst) and os.path.samefile(src, dst):
        raise ConversionError(f'refusing to overwrite the input {src}; '
                              'choose another DST')
    try:
        state_dict = unwrap(load_file(src))
        src_format = src_format or detect_format(state_dict)
        converted = convert(state_dict, src_format)
        check_values(converted, src)
        info = validate(converted)
    except UserError as err:  # every message names the file
        if str(err).startswith(src):
            raise
        raise ConversionError(f'{src}: {err}') from None
    meta = dict(src=os.path.basename(src), src_format=src_format,
                mobileone_mm_version=__version__, **info)
    save_torch(dict(state_dict=converted, meta=meta), dst)
    return meta
