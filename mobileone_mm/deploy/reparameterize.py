"""Whole-model fusion: one duck-typed walk over any model."""
import copy

import torch.nn as nn


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
    """How many MobileOne blocks in ``model`` still have train-time branches."""
    from mobileone_mm.models.backbones.mobileone import MobileOneBlock
    return sum(1 for m in model.modules()
               if isinstance(m, MobileOneBlock) and not m.is_fused)
