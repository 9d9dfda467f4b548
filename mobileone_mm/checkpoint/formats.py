"""Convert MobileOne checkpoints of other code bases to mobileone_mm's keys.

The mapping is data: ``FORMATS`` holds, per source, rename rules for the
top-level module (stem, stages, classifier) and for the inside of a block.
``convert`` is a pure ``state_dict -> state_dict`` function (``validate.py``
proves the result loads strictly into the variant its shapes describe).
``load_file`` reads any user checkpoint as data (``weights_only=True``).
Nothing here needs the backbone class, so the backbone can use this module
to read the files its ``Pretrained`` init is given.
"""
import functools
import os
import re
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

from mobileone_mm.utils.errors import UserError
from .mismatch import state_dict_mismatch

Rule = Tuple[str, Union[str, Callable[[re.Match], str]]]


def _timm_stage(m: re.Match) -> str:
    return f'backbone.stage{int(m[1]) + 1}.'


FORMATS: Dict[str, Dict[str, List[Rule]]] = {
    # apple/ml-mobileone: stage0 (stem), stage1..4, linear; mobileone_s*.pth.tar
    'apple': dict(
        root=[(r'^stage0\.', 'backbone.stem.'),
              (r'^stage([1-4])\.', r'backbone.stage\1.'),
              (r'^linear\.', 'head.fc.')],
        block=[(r'\.rbr_conv\.', '.conv_kxk.'),
               (r'\.rbr_scale\.', '.conv_scale.'),
               (r'\.rbr_skip\.', '.identity.')]),
    # mmpretrain's MobileOne inside an ImageClassifier.
    'mmpretrain': dict(
        root=[(r'^backbone\.stage0\.', 'backbone.stem.'),
              (r'^backbone\.stage([1-4])\.', r'backbone.stage\1.'),
              (r'^head\.fc\.', 'head.fc.')],
        block=[(r'\.branch_conv_list\.(\d+)\.norm\.', r'.conv_kxk.\1.bn.'),
               (r'\.branch_conv_list\.', '.conv_kxk.'),
               (r'\.branch_scale\.norm\.', '.conv_scale.bn.'),
               (r'\.branch_scale\.', '.conv_scale.'),
               (r'\.branch_norm\.', '.identity.'),
               (r'\.branch_reparam\.', '.reparam_conv.'),
               (r'\.se\.conv1\.conv\.', '.se.reduce.'),
               (r'\.se\.conv2\.conv\.', '.se.expand.')]),
    # timm's byobnet mobileone_s*: stem, stages.0..3, head.fc
    'timm': dict(
        root=[(r'^stem\.', 'backbone.stem.'),
              (r'^stages\.([0-3])\.', _timm_stage),
              (r'^head\.fc\.', 'head.fc.')],
        block=[(r'\.attn\.fc1\.', '.se.reduce.'),
               (r'\.attn\.fc2\.', '.se.expand.')]),
}
# A key that identifies each format (checked in this order).
SIGNATURES = [('mmpretrain', r'^backbone\.stage0\.'),
              ('apple', r'^stage0\.(rbr_|reparam_conv)'),
              ('timm', r'^stages?\.')]


class ConversionError(UserError, ValueError):
    """A checkpoint that cannot be read or converted; the message says why
    (the tools print it as one line)."""


def is_fused(keys) -> bool:
    """Whether weights with these names hold a fused (re-parameterized)
    MobileOne.

    Example:
        >>> is_fused(['backbone.stem.reparam_conv.weight']), is_fused(['a.conv.weight'])
        (True, False)
    """
    return any('reparam_conv.' in k for k in keys)


def unwrap(checkpoint: dict, wrappers: Tuple[str, ...] = (
        'state_dict', 'model', 'state_dict_ema')) -> Dict[str, Tensor]:
    """The flat state dict inside a checkpoint (the first of ``wrappers``
    it has, else the dict itself; DataParallel's ``module.`` prefix
    removed): the one unwrapping of every reader.

    Raises:
        ConversionError: no non-empty dict of tensors there.
    """
    sd = checkpoint
    for key in wrappers:
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not sd or not all(
            isinstance(k, str) and isinstance(v, Tensor)
            for k, v in sd.items()):
        raise ConversionError('no state dict of tensors found in the file')
    return {re.sub(r'^module\.', '', k): v for k, v in sd.items()}


def detect_format(state_dict: Dict[str, Tensor]) -> str:
    for name, pattern in SIGNATURES:
        if any(re.search(pattern, k) for k in state_dict):
            return name
    if any(k.startswith('backbone.stem.') for k in state_dict):
        raise ConversionError('the checkpoint already has mobileone_mm keys '
                              '(backbone.stem.*): no conversion needed')
    raise ConversionError(
        'unrecognised checkpoint layout (first keys: '
        f'{list(state_dict)[:3]}); pass --src-format apple|mmpretrain|timm')


def _apply(rules: List[Rule], key: str) -> Optional[str]:
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return None


def convert(state_dict: Dict[str, Tensor], src_format: str,
            strict: bool = True) -> Dict[str, Tensor]:
    """Rename every key of ``state_dict`` (a ``src_format`` checkpoint);
    ``strict=False`` drops the keys no rule maps (a detector's neck and
    head around the backbone) instead of refusing them.

    Raises:
        ConversionError: naming the keys no rule maps.
    """
    if src_format not in FORMATS:
        raise ConversionError(f'unknown source format {src_format!r}; '
                              f'choose from {sorted(FORMATS)}')
    table = FORMATS[src_format]
    out, unmapped = {}, []
    for key, value in state_dict.items():
        new = _apply(table['root'], key)
        if new is None:
            unmapped.append(key)
            continue
        for pattern, repl in table['block']:
            new = re.sub(pattern, repl, new)
        out[new] = value
    if unmapped and strict:
        raise ConversionError(
            f'{len(unmapped)} keys are not {src_format} MobileOne keys: '
            f'{unmapped[:5]}')
    return out


@functools.lru_cache(maxsize=None)
def preset_shapes(mobileone: type, arch: str, fused: bool) -> dict:
    """Key -> shape of a preset's state dict (built once, on the meta
    device)."""
    with torch.device('meta'):
        model = mobileone(arch, deploy=fused, init_cfg=None)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def closest_variant(backbone: Dict[str, Tensor], mobileone: type
                    ) -> Tuple[str, bool, Tuple[list, list, list]]:
    """The preset of ``mobileone`` (the backbone class) whose keys and
    shapes the backbone weights ``backbone`` (keys without ``backbone.``)
    match best, fused when the weights are.

    Returns:
        ``(arch, fused, (missing, unexpected, wrong_shape))`` against it.
    """
    fused = is_fused(backbone)
    best = None
    for arch in mobileone.arch_settings:
        result = state_dict_mismatch(preset_shapes(mobileone, arch, fused),
                                     backbone)
        score = sum(map(len, result))
        if best is None or score < best[0]:
            best = (score, arch, result)
    return best[1], fused, best[2]


def why_unreadable(err: Exception) -> str:
    """Why torch could not read a file, in a few words."""
    text = str(err).strip()
    code = re.search(r'GLOBAL ([\w.]+)', text)
    if code:  # weights_only refused a global: the pickle wants code
        return (f'it refers to {code[1]}, which is code, not data; a '
                f'checkpoint must hold only tensors and plain data, and '
                f'loading this one could run that code')
    first = text.splitlines()[0] if text else ''
    return f'{type(err).__name__}: {first[:200]}'


def load_bytes(data: bytes, name: str, map_location='cpu') -> dict:
    """:func:`load_file` for a checkpoint already in memory (object storage
    hands one over as bytes); ``name`` is what the error message names."""
    import io
    try:
        return torch.load(io.BytesIO(data), map_location=map_location,
                          weights_only=True)
    except Exception as err:  # any reader error means: not a checkpoint
        raise ConversionError(f'{name}: cannot read as a checkpoint '
                              f'({why_unreadable(err)})') from err


def load_file(path: str, map_location='cpu') -> dict:
    """Read a checkpoint (``torch.save`` file or ``.safetensors``) as data:
    ``weights_only=True`` with the package's allow-list of mmengine's types
    (``mobileone_mm.utils.compat``), so unpickling runs no code.

    Raises:
        ConversionError: no such file, or not readable as data (the
            message starts with ``path``).
    """
    if not os.path.isfile(path):
        raise ConversionError(f'{path}: no such file')
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file as load_safetensors
            return load_safetensors(path, device='cpu')
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # any reader error means: not a checkpoint
        raise ConversionError(f'{path}: cannot read as a checkpoint '
                              f'({why_unreadable(err)})') from err
