"""Whether a checkpoint fits the model it is about to be loaded into.

mmengine loads non-strictly and reports missing, unexpected and mis-shaped
weights only as log warnings, which is how a checkpoint of another variant
(S0 weights in an S2 config), of the other structure (fused/unfused) or of
another task becomes a partly random model. tools/train.py and
tools/test.py compare keys and shapes first (:func:`check_fit`) and stop with
one message naming what does not fit and the fix, unless a partial load is
asked for; then they say what was not loaded.
"""
import os.path as osp
import re
from typing import Dict, List, Tuple

import torch.nn as nn
from torch import Tensor

from mobileone_mm.checkpoint.mismatch import (few, mismatch_summary,
                                              state_dict_mismatch)
from mobileone_mm.utils.errors import UserError
from .checkpoints import warn

Shapes = Dict[str, Tuple[int, ...]]


def weight_shapes(checkpoint: dict, path: str) -> Shapes:
    """Key -> shape of the weights mmengine loads from ``checkpoint``: its
    ``state_dict`` (else the dict itself), with DataParallel's ``module.``
    prefix removed, as mmengine's loader does.

    Example:
        >>> import torch
        >>> weight_shapes({'state_dict': {'module.fc.weight': torch.zeros(2, 3)}}, 'x.pth')
        {'fc.weight': (2, 3)}
    """
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, Tensor) for v in state.values()):
        raise UserError(f'{path} holds no state dict of tensors: it is not a '
                        f'model checkpoint; use another file')
    return {re.sub(r'^module\.', '', k): tuple(v.shape)
            for k, v in state.items()}


def model_shapes(model: nn.Module) -> Shapes:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _fused(shapes: Shapes) -> bool:
    return any('.reparam_conv.' in k for k in shapes)


def _modules(shapes: Shapes) -> List[str]:
    return sorted({k.split('.')[0] for k in shapes})


def unfused_config(config: str) -> str:
    """The train-time config of a ``*_deploy.py`` config.

    Example:
        >>> unfused_config('configs/classification/mobileone_s0_in1k_deploy.py')
        'configs/classification/mobileone_s0_in1k.py'
        >>> unfused_config('my.py')
        'my.py with model.backbone.deploy=False'
    """
    if config.endswith('_deploy.py'):
        return config[:-len('_deploy.py')] + '.py'
    return f'{config} with model.backbone.deploy=False'


def hint(model: Shapes, checkpoint: Shapes, config: str) -> str:
    """The likely cause of a mismatch and its fix."""
    if _fused(checkpoint) and not _fused(model):
        deploy = re.sub(r'\.py$', '_deploy.py', config)
        fused_cfg = (deploy if osp.isfile(deploy) else
                     'the config with --cfg-options model.backbone.deploy=True')
        return (f'the checkpoint holds a fused (re-parameterized) MobileOne '
                f'and the config builds the train-time branches: use '
                f'{fused_cfg}')
    if _fused(model) and not _fused(checkpoint):
        return (f'the checkpoint holds the train-time branches and the config '
                f'builds the fused network: use {unfused_config(config)} '
                f'(tools/test.py --deploy evaluates it fused), or fuse the '
                f'checkpoint first with tools/reparameterize.py')
    if _modules(model) != _modules(checkpoint):
        return (f'a checkpoint of another model or task (modules '
                f'{", ".join(_modules(checkpoint))}; the config has '
                f'{", ".join(_modules(model))}): use the config it was trained '
                f'with; to start from its backbone, name it in '
                f'model.backbone.init_cfg (type Pretrained, prefix '
                f'\'backbone.\')')
    return ('a checkpoint of another variant or head (e.g. S0 '
            'weights for an S2 config): use the config it was trained with')


def check_fit(model: nn.Module, checkpoint: Shapes, path: str, config: str,
              partial: bool = False, resume: bool = False) -> List[str]:
    """Stop unless ``checkpoint`` (key -> shape) loads strictly into
    ``model``; with ``partial``, warn about what will not load instead.

    Returns:
        The model's weights that the checkpoint leaves as initialised.

    Raises:
        UserError: one line: a few keys of each kind of mismatch, the likely
            cause and the fix.
    """
    ours = model_shapes(model)
    missing, unexpected, wrong = state_dict_mismatch(ours, checkpoint)
    if not (missing or unexpected or wrong):
        return []
    if not partial:
        option = ''  # a partial load makes no sense across fused/unfused
        if _fused(ours) == _fused(checkpoint):
            option = ('; resume from a checkpoint of this config (or fine-'
                      f'tune from it: --cfg-options load_from={path} '
                      f'--partial-load)' if resume else '; or pass '
                      '--partial-load to load only the weights that fit '
                      '(e.g. fine-tuning with a new head)')
        raise UserError(
            f'{path} does not fit the model of {config}: '
            f'{mismatch_summary(missing, unexpected, wrong, ours, checkpoint)}'
            f'. Likely: {hint(ours, checkpoint, config)}{option}')
    skipped = missing + wrong
    unused = f': {few(unexpected)}' if unexpected else ''
    warn(f'--partial-load: {len(ours) - len(skipped)} of {len(ours)} model '
         f'weights loaded from {path}; {len(skipped)} not loaded (left as '
         f'initialised): {few(skipped)}; {len(unexpected)} checkpoint '
         f'weights not used{unused}')
    return skipped
