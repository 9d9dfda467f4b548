"""The model the deploy tool exports: a config's model built with the user's
checkpoint (fused or not, told apart by reading the file as data), or with
random weights and BN statistics that keep its outputs at a sane scale."""
import copy
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

from mobileone_mm.apis import build_model
from mobileone_mm.checkpoint import ConversionError, load_file
from mobileone_mm.checkpoint.fit import is_fused, runner_state
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError, warn
from .compare import forward_tensors

CALIBRATION_BATCHES = 4
RANDOM_WEIGHTS = ('no checkpoint: exporting random weights (BN statistics '
                  'estimated from random inputs); op counts and latency are '
                  'valid, outputs are not')
PREFUSED = ('model already fused (fused checkpoint or deploy=True config): '
            'no train-time model to compare or time')


def checkpoint_is_fused(path: str) -> bool:
    """Whether a checkpoint holds fused blocks (``reparam_conv`` keys, as
    ``tools/reparameterize.py`` writes them).

    The file is read as data (:func:`mobileone_mm.checkpoint.load_file`:
    ``weights_only=True`` with the package's allow-list): a file whose
    unpickling would run code is refused, never executed.

    Raises:
        UserError: The file cannot be read as a checkpoint.
    """
    try:
        return is_fused(runner_state(load_file(path), path))
    except ConversionError as err:
        raise UserError(f'{err}; a checkpoint must hold only tensors and '
                        f'plain data (torch.save of a state dict)')


def backbone_of(model: nn.Module) -> MobileOne:
    """``model`` itself when it is a MobileOne, else ``model.backbone``."""
    backbone = model if isinstance(model, MobileOne) else \
        getattr(model, 'backbone', None)
    if not isinstance(backbone, MobileOne):
        raise UserError(f'the config\'s model has no MobileOne backbone '
                        f'(model.backbone is {type(backbone).__name__}); '
                        f'tools/deploy.py exports mobileone_mm models')
    return backbone


def whole_backbone(backbone: MobileOne) -> MobileOne:
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
    shape = (2, ) + tuple(input_shape[1:])
    gen = torch.Generator().manual_seed(0)
    model.eval()
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.train()
    with torch.no_grad():
        for _ in range(batches):
            forward_tensors(model, torch.rand(*shape, generator=gen))
    return model.eval()


def build_for_deploy(cfg: Config, checkpoint: Optional[str],
                     input_shape: Sequence[int],
                     verbose: bool = True) -> Tuple[nn.Module, List[str]]:
    """Build ``cfg.model`` (``cfg`` is changed: a fused checkpoint sets
    ``model.backbone.deploy``) and say what the export can and cannot show.

    Returns:
        ``(model, notes)``: the model in eval mode, loaded strictly; without
        a checkpoint random and BN-calibrated, with a warning on stderr when
        ``verbose``.
    """
    if checkpoint is not None and osp.isfile(checkpoint) and \
            checkpoint_is_fused(checkpoint):
        cfg.model.backbone.deploy = True  # built fused, loads strictly
    torch.manual_seed(0)
    model = build_model(cfg, checkpoint)
    notes = [PREFUSED] if backbone_of(model).is_fused else []
    if checkpoint is None:
        notes.append(RANDOM_WEIGHTS)
        if verbose:
            warn(RANDOM_WEIGHTS)
        calibrate_bn(model, input_shape)
    return model, notes
