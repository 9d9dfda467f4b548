"""The re-parameterizable block of MobileOne (paper Fig. 3) and its SE-ReLU.

At training time the block has ``k`` parallel conv+BN branches, a 1x1
conv+BN "scale" branch (kernels > 1) and a BN-only identity branch (when
input and output shapes match); ``switch_to_deploy()`` folds them into one
conv (BN into each conv, the 1x1 kernel padded to kxk, the identity as a
centred one-hot kernel, all summed).
"""
from collections import OrderedDict
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

from .fast_branches import (branch_kernel_bias, check_branch_impl,
                            fast_forward)


# Activations that take no ``inplace`` argument (mmcv ConvModule's list).
_NO_INPLACE = ('Tanh', 'PReLU', 'Sigmoid', 'HSigmoid', 'Swish', 'GELU')


def _activation(act_cfg: Optional[dict]) -> nn.Module:
    """``build_activation_layer`` with ``inplace=True`` by default, as
    ``mmcv.cnn.ConvModule``: no extra output tensor per block."""
    if not act_cfg:
        return nn.Identity()
    act_cfg = dict(act_cfg)
    if act_cfg['type'] not in _NO_INPLACE:
        act_cfg.setdefault('inplace', True)
    return build_activation_layer(act_cfg)


class SqueezeExcite(nn.Module):
    """SE-ReLU (Hu et al.) as in ml-mobileone: global pool, 1x1 reduce, ReLU,
    1x1 expand, sigmoid gate. Written here (four lines) because mmcv has no
    SE layer; mmdet's and mmpretrain's would make the backbone depend on
    them and rename the weights."""

    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        hidden = int(channels / ratio)  # ml-mobileone: int(c * 0.0625)
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.expand(torch.relu(self.reduce(s)))
        return x * torch.sigmoid(s)


class MobileOneBlock(BaseModule):
    """One re-parameterizable conv of MobileOne (paper Fig. 3).

    The block is fused exactly when ``reparam_conv`` exists: the structure,
    not a flag, says which state it is in.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Kernel size of the main branches (3 or 1).
        stride: Stride.
        dilation: Dilation of the kxk branches (the 1x1 branches need none:
            their tap sits on the centre of the dilated kernel).
        groups: Conv groups (``in_channels`` for depthwise).
        num_conv_branches: ``k``, the trivial over-parameterization factor.
        use_se: Apply SE-ReLU after the conv (MobileOne-S4).
        norm_cfg: Norm layer of every branch (BN or SyncBN).
        act_cfg: Activation after the block; ``None`` for none. Applied in
            place where the activation allows it, as mmcv's ``ConvModule``
            does (its input is always a fresh tensor here).
        use_identity: Add the BN-only identity branch. ``None`` (default):
            when input and output shapes match (same channels, stride 1).
        deploy: Build the fused single conv directly.
        branch_impl: How the unfused block computes its branches:
            ``'fast'`` (default: one conv with the fused kernel when its BNs
            use running statistics; in training, 1x1 blocks with ``k > 1``
            folded into one conv with the batch's statistics, the others
            batched into one conv and one BN), ``'batched'`` (never folded)
            or ``'reference'`` (one conv and BN per branch, as
            ml-mobileone). All three compute the same function, gradients
            and BN buffers (:mod:`.fast_branches`); parameters and
            state-dict keys do not depend on it.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 dilation: int = 1,
                 groups: int = 1,
                 num_conv_branches: int = 1,
                 use_se: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 use_identity: Optional[bool] = None,
                 deploy: bool = False,
                 branch_impl: str = 'fast',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if use_identity is None:
            use_identity = in_channels == out_channels and stride == 1
        if use_identity and (in_channels != out_channels or stride != 1):
            raise ValueError('an identity branch needs in_channels == '
                             'out_channels and stride 1')
        if num_conv_branches < 1:
            raise ValueError(
                f'num_conv_branches must be >= 1, got {num_conv_branches}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.padding = dilation * (kernel_size // 2)
        self.groups = groups
        self.num_conv_branches = num_conv_branches
        self.norm_cfg = norm_cfg
        self.branch_impl = check_branch_impl(branch_impl)

        self.se = SqueezeExcite(out_channels) if use_se else nn.Identity()
        self.act = _activation(act_cfg)

        self.reparam_conv: Optional[nn.Conv2d] = None
        self.conv_kxk: Optional[nn.ModuleList] = None
        self.conv_scale: Optional[nn.Sequential] = None
        self.identity: Optional[nn.Module] = None
        if deploy:
            self.reparam_conv = self._fused_conv()
            return
        if use_identity:
            self.identity = build_norm_layer(norm_cfg, in_channels)[1]
        self.conv_kxk = nn.ModuleList(
            self._conv_bn(kernel_size, self.padding, dilation)
            for _ in range(num_conv_branches))
        if kernel_size > 1:
            self.conv_scale = self._conv_bn(1, 0, 1)

    def _conv_bn(self, kernel_size: int, padding: int,
                 dilation: int) -> nn.Sequential:
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            kernel_size,
            stride=self.stride,
            padding=padding,
            dilation=dilation,
            groups=self.groups,
            bias=False)
        bn = build_norm_layer(self.norm_cfg, self.out_channels)[1]
        return nn.Sequential(OrderedDict(conv=conv, bn=bn))

    def _fused_conv(self) -> nn.Conv2d:
        return nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            bias=True)

    @property
    def is_fused(self) -> bool:
        return self.reparam_conv is not None

    def forward(self, x: Tensor) -> Tensor:
        if self.reparam_conv is not None:
            return self.act(self.se(self.reparam_conv(x)))
        out = None
        if self.branch_impl != 'reference':
            out = fast_forward(self, x)
        if out is None:
            out = self.reference_forward(x)
        return self.act(self.se(out))

    def reference_forward(self, x: Tensor) -> Tensor:
        """The sum of the branches, one conv and BN each (ml-mobileone)."""
        out = self.identity(x) if self.identity is not None else 0
        if self.conv_scale is not None:
            out = out + self.conv_scale(x)
        for branch in self.conv_kxk:
            out = out + branch(x)
        return out

    @torch.no_grad()
    def fused_kernel_bias(self) -> Tuple[Tensor, Tensor]:
        """The single kernel and bias equal to the sum of all branches."""
        if self.reparam_conv is not None:
            return self.reparam_conv.weight, self.reparam_conv.bias
        return branch_kernel_bias(self)

    def switch_to_deploy(self) -> None:
        """Fuse the branches into ``reparam_conv`` in place (idempotent)."""
        if self.reparam_conv is not None:
            return
        kernel, bias = self.fused_kernel_bias()
        conv = self._fused_conv().to(device=kernel.device, dtype=kernel.dtype)
        conv.weight.data.copy_(kernel)
        conv.bias.data.copy_(bias)
        conv.train(self.training)  # a new module: give it the block's mode
        self.reparam_conv = conv
        self.conv_kxk = None
        self.conv_scale = None
        self.identity = None
