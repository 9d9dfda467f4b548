"""Pure tensor functions for structural re-parameterization.

Everything here is exact algebra on tensors (no modules are built), so the
same functions serve every block type and keep the dtype and device of the
weights they are given.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm


def fuse_conv_bn(weight: Optional[Tensor], bn: _BatchNorm) -> Tuple[Tensor, Tensor]:
    """Fold an inference-mode BatchNorm into the conv before it.

    ``BN(conv(x)) = conv'(x)`` with ``W' = W * gamma / sigma`` and
    ``b' = beta - mu * gamma / sigma`` (the conv has no bias here, as in
    every MobileOne branch).

    Args:
        weight: The conv kernel ``(C_out, C_in / groups, k, k)``. ``None`` is
            not accepted here: build an identity kernel with
            :func:`identity_kernel` first.
        bn: Any ``_BatchNorm`` (``BatchNorm2d`` or ``SyncBatchNorm``).

    Returns:
        The fused kernel and bias.
    """
    if not isinstance(bn, _BatchNorm):
        raise TypeError(f'expected a BatchNorm layer, got {type(bn).__name__}')
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    t = (gamma / std).reshape(-1, 1, 1, 1)
    return weight * t, beta - bn.running_mean * gamma / std


def identity_kernel(channels: int, groups: int, kernel_size: int,
                    like: Tensor) -> Tensor:
    """A conv kernel that copies its input: a centred one-hot per channel.

    ``like`` supplies dtype and device, so the kernel matches the weights it is
    summed with (the timm approach, no throwaway conv module).
    """
    in_per_group = channels // groups
    kernel = torch.zeros((channels, in_per_group, kernel_size, kernel_size),
                         dtype=like.dtype, device=like.device)
    centre = kernel_size // 2
    idx = torch.arange(channels, device=like.device)
    kernel[idx, idx % in_per_group, centre, centre] = 1
    return kernel


def pad_kernel(kernel: Tensor, kernel_size: int) -> Tensor:
    """Zero-pad a smaller (e.g. 1x1) kernel to ``kernel_size`` around its centre."""
    pad = (kernel_size - kernel.shape[-1]) // 2
    return F.pad(kernel, [pad] * 4) if pad > 0 else kernel
