"""MobileOne backbone (Vasu et al., "MobileOne: An Improved One millisecond
Mobile Backbone", CVPR 2023), faithful to apple/ml-mobileone.

At training time every conv of a MobileNet-V1 style block (3x3 depthwise, then
1x1 pointwise) has ``k`` parallel conv+BN branches, a 1x1 conv+BN "scale"
branch (kernels > 1) and a BN-only identity branch (when input and output
shapes match). ``switch_to_deploy()`` folds them into one conv, so the
inference network is a plain chain of conv + ReLU.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mobileone_mm.checkpoint.pretrained import load_pretrained
from mobileone_mm.registry import MODELS
from mobileone_mm.utils.errors import UserError
from .mobileone_block import MobileOneBlock, SqueezeExcite

__all__ = ['MobileOne', 'MobileOneBlock', 'SqueezeExcite']

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


class UnknownArchError(UserError, ValueError):
    """An ``arch`` name that is no preset; tools print it as one line."""


def pretrained_cfgs(init_cfg) -> List[dict]:
    """The ``Pretrained`` entries of an mmengine ``init_cfg``."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return [cfg for cfg in cfgs
            if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained']


def missing_pretrained(init_cfg) -> Optional[str]:
    """The checkpoint path of a ``Pretrained`` entry of ``init_cfg`` that
    does not exist (URLs are left to mmengine's loader), else ``None``."""
    for cfg in pretrained_cfgs(init_cfg):
        path = cfg.get('checkpoint')
        if isinstance(path, str) and '://' not in path and not osp.isfile(path):
            return path
    return None


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
        use_se: ``False`` drops the SE-ReLU blocks of the arch (S4 without
            SE, as the paper's segmentation models, Table 9b); the default
            keeps what the arch has.
        branch_gamma: BN scale ``gamma`` given at initialisation to the conv
            branches of blocks that have an identity branch. ``None`` (the
            default) keeps 1, as ml-mobileone. A small value (0, 0.1) starts
            the training-time network close to its identity branches, as
            ``zero_init_residual`` does for ResNet: the plain net then trains
            from scratch in hundreds of iterations instead of stalling near
            chance (the CPU demos need this). Not applied when ``init_cfg``
            loads a checkpoint; the fused network is the same either way.
        branch_impl: How unfused blocks compute their branches: ``'fast'``
            (default; eval with the fused kernel computed on the fly,
            training with the branches folded or batched), ``'batched'`` or
            ``'reference'`` (per branch, as ml-mobileone). The same function,
            gradients and BN buffers either way; see
            :class:`MobileOneBlock` and docs/en/advanced_guides/fast_branches.md.
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained',
            checkpoint='mobileone_s0.pth', prefix='backbone.')``. A
            ``Pretrained`` file may be Apple's (unfused or fused),
            mmpretrain's, timm's or ours, with or without ``prefix``; it must
            give every weight of this backbone (``deploy=True`` for a fused
            file), else loading stops naming the file's variant and the fix
            (:func:`mobileone_mm.checkpoint.load_pretrained`).

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
                 use_se: bool = True,
                 branch_gamma: Optional[float] = None,
                 branch_impl: str = 'fast',
                 init_cfg: Optional[Union[dict, List[dict]]] = [
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1, layer=['_BatchNorm'])
                 ]) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_name = arch if isinstance(arch, str) else 'custom'
        self.arch = self.parse_arch(arch)
        if not use_se:
            self.arch['num_se_blocks'] = (0, ) * NUM_STAGES
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
        block_cfg = dict(norm_cfg=norm_cfg, act_cfg=act_cfg, deploy=deploy,
                         branch_impl=branch_impl)

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
    def parse_arch(cls, arch: Union[str, dict]) -> Dict[str, tuple]:
        """The arch settings of a preset name or an arch dict; an unknown
        name raises :class:`UnknownArchError` (a ``UserError``)."""
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_settings:
                raise UnknownArchError(
                    f'unknown MobileOne arch {arch!r}: choose one of '
                    f'{", ".join(cls.arch_settings)} (e.g. --cfg-options '
                    f'model.backbone.arch=s0), or a dict with the keys '
                    f'{", ".join(cls.arch_keys)}')
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
        path = missing_pretrained(self.init_cfg)
        if path is not None:
            raise FileNotFoundError(
                f'MobileOne pretrained checkpoint not found: {path} (the '
                f'Pretrained entry of init_cfg); point it at an existing file, '
                f'or set init_cfg=None to train from scratch')
        pretrained = pretrained_cfgs(self.init_cfg)
        if not pretrained:
            super().init_weights()
            if self.branch_gamma is not None:
                self._init_branch_gamma(self.branch_gamma)
            return
        # Loaded here instead of by mmengine's PretrainedInit (non-strict,
        # one key layout): any known format, and every weight must come from
        # the file, so the other init_cfg entries would be overwritten.
        for cfg in pretrained:
            load_pretrained(self, cfg['checkpoint'], cfg.get('prefix'))
        self._is_init = True

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
