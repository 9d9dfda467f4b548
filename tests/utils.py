"""Helpers shared by the tests."""
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine parameters, so a wrong fusion fails."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            shape, dtype = m.running_mean.shape, m.running_mean.dtype
            m.running_mean.copy_(torch.randn(shape, generator=gen).to(dtype))
            m.running_var.copy_(torch.rand(shape, generator=gen).to(dtype) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.randn(shape, generator=gen).to(dtype))
                m.bias.data.copy_(torch.randn(shape, generator=gen).to(dtype))
    return model


def classifier(backbone: nn.Module, num_classes: int = 1000) -> nn.Module:
    from mobileone_mm.models import LinearClassifier
    return LinearClassifier(backbone, num_classes)
