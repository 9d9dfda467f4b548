"""MobileOne backbone (Vasu et al., "MobileOne: An Improved One millisecond
Mobile Backbone", CVPR 2023), faithful to apple/ml-mobileone.

At training time every conv of a MobileNet-V1 style block (3x3 depthwise, then
1x1 pointwise) has ``k`` parallel conv+BN branches, a 1x1 conv+BN "scale"
branch (kernels > 1) and a BN-only identity branch (when input and output
shapes match). ``switch_to_deploy()`` folds them into one conv, so the
inference network is a plain chain of conv + ReLU.
"""
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mobileone_mm.registry import MODELS
from ..utils.fusion import fuse_conv_bn, identity_kernel, pad_kernel

NUM_STAGES = 4
BASE_WIDTHS = (64, 128, 256, 512)  # paper Table 2, before the width factor alpha
DEPTHS = (2, 8, 10, 1)  # paper Table 2: block pairs per stage (stem excluded)


def _preset(alphas: Sequence[float], k: int,
            se: Sequence[int] = (0, 0, 0, 0)) -> Dict[str, tuple]:
    return dict(
        num_blocks=DEPTHS,
        widths=tuple(int(c * a) for c, a in zip(BASE_WIDTHS, alphas)),
        num_conv_branches=(k, ) * NUM_STAGES,
        num_se_blocks=tuple(se))


def pretrained_cfgs(init_cfg) -> List[dict]:
    """The ``Pretrained`` entries of an mmengine ``init_cfg``."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return [cfg for cfg in cfgs
            if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained']


def missing_pretrained(init_cfg, arch: str = 's0') -> Optional[str]:
    """A message saying how to get the ``Pretrained`` checkpoint that
    ``init_cfg`` names, or ``None`` when it exists (or is a URL)."""
    for cfg in pretrained_cfgs(init_cfg):
        path = cfg.get('checkpoint')
        if isinstance(path, str) and '://' not in path and not osp.isfile(path):
            return (f'MobileOne ImageNet checkpoint not found: {path}. Make '
                    f'it with one of: (1) convert Apple\'s released file: '
                    f'python tools/convert_checkpoint.py '
                    f'mobileone_{arch}_unfused.pth.tar {path}; (2) train '
                    f'configs/classification/mobileone_{arch}_in1k.py with '
                    f'tools/train.py and copy its checkpoint there; (3) train '
                    f'from scratch: --cfg-options model.backbone.init_cfg=None')
    return None


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
        out = self.identity(x) if self.identity is not None else 0
        if self.conv_scale is not None:
            out = out + self.conv_scale(x)
        for branch in self.conv_kxk:
            out = out + branch(x)
        return self.act(self.se(out))

    @torch.no_grad()
    def fused_kernel_bias(self) -> Tuple[Tensor, Tensor]:
        """The single kernel and bias equal to the sum of all branches."""
        if self.reparam_conv is not None:
            return self.reparam_conv.weight, self.reparam_conv.bias
        pairs = [fuse_conv_bn(b.conv.weight, b.bn) for b in self.conv_kxk]
        if self.conv_scale is not None:
            w, b = fuse_conv_bn(self.conv_scale.conv.weight,
                                self.conv_scale.bn)
            pairs.append((pad_kernel(w, self.kernel_size), b))
        if self.identity is not None:
            ident = identity_kernel(self.in_channels, self.groups,
                                    self.kernel_size,
                                    like=self.conv_kxk[0].conv.weight)
            pairs.append(fuse_conv_bn(ident, self.identity))
        kernel = torch.stack([w for w, _ in pairs]).sum(0)
        bias = torch.stack([b for _, b in pairs]).sum(0)
        return kernel, bias

    def switch_to_deploy(self) -> None:
        """Fuse the branches into ``reparam_conv`` in place (idempotent)."""
        if self.reparam_conv is not None:
            return
        kernel, bias = self.fused_kernel_bias()
        conv = self._fused_conv().to(device=kernel.device, dtype=kernel.dtype)
        conv.weight.data.copy_(kernel)
        conv.bias.data.copy_(bias)
        self.reparam_conv = conv
        self.conv_kxk = None
        self.conv_scale = None
        self.identity = None


@MODELS.register_module()
class MobileOne(BaseModule):
    """MobileOne backbone following the OpenMMLab backbone contract.

    Args:
        arch: ``'s0'``..``'s4'`` or a dict with 4-tuples ``num_blocks``
            (block pairs per stage), ``widths`` (output channels per stage),
            ``num_conv_branches`` (``k`` per stage) and ``num_se_blocks``
            (SE on the last n block pairs of each stage). The stem has
            ``min(64, widths[0])`` channels and one conv branch, as in
            ml-mobileone.
        in_channels: Input image channels.
        out_indices: Stages (0..3) whose outputs are returned.
        strides: Stride of each stage's first block (output stride 8 for
            segmentation: ``(2, 2, 1, 1)``).
        dilations: Dilation of each stage's 3x3 depthwise convs (e.g.
            ``(1, 1, 2, 4)`` with the strides above).
        frozen_stages: Freeze the stem (0) and stages 1..n; -1 freezes none.
        norm_eval: Keep norm layers in eval mode while training.
        norm_cfg: Norm layer config (BN or SyncBN).
        act_cfg: Activation config (the paper uses ReLU only, Sec. 3.2).
        deploy: Build the fused, branch-free network directly.
        branch_gamma: BN scale ``gamma`` given at initialisation to the conv
            branches of blocks that have an identity branch. ``None`` (the
            default) keeps 1, as ml-mobileone. A small value (0, 0.1) starts
            the training-time network close to its identity branches, as
            ``zero_init_residual`` does for ResNet: the plain net then trains
            from scratch in hundreds of iterations instead of stalling near
            chance (the CPU demos need this). Not applied when ``init_cfg``
            loads a checkpoint; the fused network is the same either way.
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained',
            checkpoint='mobileone_s0.pth', prefix='backbone.')``.

    Example:
        >>> import torch
        >>> from mobileone_mm.models import MobileOne
        >>> model = MobileOne('s0', out_indices=(0, 1, 2, 3)).eval()
        >>> outs = model(torch.rand(1, 3, 224, 224))
        >>> [tuple(o.shape) for o in outs]
        [(1, 48, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14), (1, 1024, 7, 7)]
        >>> model.switch_to_deploy()
        >>> model.is_fused
        True
    """

    # Paper Table 2 (width factors alpha, k) and ml-mobileone's PARAMS.
    arch_settings = {
        's0': _preset((0.75, 1.0, 1.0, 2.0), k=4),
        's1': _preset((1.5, 1.5, 2.0, 2.5), k=1),
        's2': _preset((1.5, 2.0, 2.5, 4.0), k=1),
        's3': _preset((2.0, 2.5, 3.0, 4.0), k=1),
        # S4: SE-ReLU on the last 5 pairs of stage 3 and the pair of stage 4.
        's4': _preset((3.0, 3.5, 3.5, 4.0), k=1, se=(0, 0, 5, 1)),
    }
    arch_keys = ('num_blocks', 'widths', 'num_conv_branches', 'num_se_blocks')

    def __init__(self,
                 arch: Union[str, dict] = 's0',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (3, ),
                 strides: Sequence[int] = (2, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 deploy: bool = False,
                 branch_gamma: Optional[float] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = [
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1, layer=['_BatchNorm'])
                 ]) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_name = arch if isinstance(arch, str) else 'custom'
        self.arch = self._parse_arch(arch)
        self.out_indices = self._parse_out_indices(out_indices)
        for name, value in (('strides', strides), ('dilations', dilations)):
            if len(value) != NUM_STAGES:
                raise ValueError(f'{name} must have {NUM_STAGES} entries (one '
                                 f'per stage), got {tuple(value)}')
        if not -1 <= frozen_stages <= NUM_STAGES:
            raise ValueError(f'frozen_stages must be in [-1, {NUM_STAGES}], '
                             f'got {frozen_stages}')
        self.strides = tuple(strides)
        self.dilations = tuple(dilations)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        if branch_gamma is not None and branch_gamma < 0:
            raise ValueError(f'branch_gamma must be >= 0 or None, got '
                             f'{branch_gamma}')
        self.branch_gamma = branch_gamma
        block_cfg = dict(norm_cfg=norm_cfg, act_cfg=act_cfg, deploy=deploy)

        widths = self.arch['widths']
        stem_channels = min(64, widths[0])
        self.stem = MobileOneBlock(
            in_channels, stem_channels, 3, stride=2, **block_cfg)
        self.stage_names = []
        channels = stem_channels
        for i in range(NUM_STAGES):
            stage = self._make_stage(channels, widths[i],
                                     self.arch['num_blocks'][i],
                                     self.arch['num_se_blocks'][i],
                                     self.arch['num_conv_branches'][i],
                                     self.strides[i], self.dilations[i],
                                     block_cfg)
            channels = widths[i]
            name = f'stage{i + 1}'
            self.add_module(name, stage)
            self.stage_names.append(name)
        self.out_channels = [widths[i] for i in self.out_indices]
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> Dict[str, tuple]:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_settings:
                raise ValueError(f'unknown MobileOne arch {arch!r}; valid '
                                 f'names: {sorted(cls.arch_settings)} or a '
                                 f'dict with keys {cls.arch_keys}')
            return dict(cls.arch_settings[key])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a name or a dict, got {arch!r}')
        missing = set(cls.arch_keys) - set(arch)
        extra = set(arch) - set(cls.arch_keys)
        if missing or extra:
            raise ValueError(f'arch dict needs exactly the keys '
                             f'{cls.arch_keys}; missing {sorted(missing)}, '
                             f'unexpected {sorted(extra)}')
        parsed = {k: tuple(int(v) for v in arch[k]) for k in cls.arch_keys}
        for key, value in parsed.items():
            if len(value) != NUM_STAGES:
                raise ValueError(f'arch[{key!r}] needs {NUM_STAGES} values, '
                                 f'got {value}')
        for n, se in zip(parsed['num_blocks'], parsed['num_se_blocks']):
            if not 0 <= se <= n:
                raise ValueError(f'num_se_blocks {se} must be in [0, {n}] '
                                 f'(the number of block pairs)')
        return parsed

    @staticmethod
    def _parse_out_indices(out_indices: Sequence[int]) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        parsed = []
        for index in out_indices:
            if not -NUM_STAGES <= index < NUM_STAGES:
                raise ValueError(
                    f'out_indices {tuple(out_indices)} has {index}, out of '
                    f'range: valid stage indices are 0..{NUM_STAGES - 1} '
                    f'(or -{NUM_STAGES}..-1)')
            parsed.append(index % NUM_STAGES)
        return tuple(parsed)

    @staticmethod
    def _make_stage(in_channels: int, out_channels: int, num_blocks: int,
                    num_se_blocks: int, num_conv_branches: int, stride: int,
                    dilation: int, block_cfg: dict) -> nn.Sequential:
        blocks = []
        for i in range(num_blocks):
            use_se = i >= num_blocks - num_se_blocks
            blocks.append(  # 3x3 depthwise
                MobileOneBlock(
                    in_channels,
                    in_channels,
                    3,
                    stride=stride if i == 0 else 1,
                    dilation=dilation,
                    groups=in_channels,
                    num_conv_branches=num_conv_branches,
                    use_se=use_se,
                    # A stage's first block is a stride-2 block in every
                    # variant (Table 2): it keeps that structure (no identity
                    # branch) when `strides` sets 1 for output stride 8, so
                    # ImageNet checkpoints load unchanged.
                    use_identity=False if i == 0 else None,
                    **block_cfg))
            blocks.append(  # 1x1 pointwise
                MobileOneBlock(
                    in_channels,
                    out_channels,
                    1,
                    num_conv_branches=num_conv_branches,
                    use_se=use_se,
                    **block_cfg))
            in_channels = out_channels
        return nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def init_weights(self) -> None:
        message = missing_pretrained(self.init_cfg, self.arch_name)
        if message:
            raise FileNotFoundError(message)
        super().init_weights()
        if self.branch_gamma is not None and not pretrained_cfgs(
                self.init_cfg):
            self._init_branch_gamma(self.branch_gamma)

    @torch.no_grad()
    def _init_branch_gamma(self, gamma: float) -> None:
        for block in self.blocks():
            if block.is_fused or block.identity is None:
                continue
            branches = list(block.conv_kxk)
            if block.conv_scale is not None:
                branches.append(block.conv_scale)
            for branch in branches:
                branch.bn.weight.fill_(gamma)

    def blocks(self) -> List[MobileOneBlock]:
        return [m for m in self.modules() if isinstance(m, MobileOneBlock)]

    @property
    def is_fused(self) -> bool:
        return all(block.is_fused for block in self.blocks())

    def switch_to_deploy(self) -> None:
        """Fuse every block in place (idempotent); mmdeploy calls this."""
        for block in self.blocks():
            block.switch_to_deploy()
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = [self.stem] + [
            getattr(self, name)
            for name in self.stage_names[:self.frozen_stages]
        ]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'MobileOne':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
