"""The paper's ablations on a 30-layer conv net: Table 3 (activations) and
Table 1b (SE blocks and skip connections).

The paper's net (Sec. 3.2) is not specified beyond its depth; ours: 30 3x3
conv+BN+activation layers in 5 stages of 6 (widths 16-256, stride 2 at each
stage's first layer), global pool + linear."""
import functools
from typing import Callable, Dict

import torch
import torch.nn as nn

from .workers import measure_models

ABLATION_WIDTHS = (16, 32, 64, 128, 256)
LAYERS_PER_STAGE = 6

# Paper figures (iPhone 12, ms). Table 3: activation -> latency;
# Table 1b: row -> (activation, skip connections, latency).
TABLE3 = {'relu': 1.53, 'gelu': 1.63, 'se_relu': 2.10, 'silu': 2.54,
          'dynamic_relu_a': 273.49, 'dynamic_relu_b': 242.14}
TABLE1B = {'baseline': ('relu', False, 1.53), '+se': ('se_relu', False, 2.10),
           '+se+skip': ('se_relu', True, 2.62)}


class DynamicReLU(nn.Module):
    """DynamicReLU (Chen et al. 2020, the paper's [41]): y = max_k(a_k x + b_k)
    with the 2K coefficients predicted from the globally pooled input.
    'A': shared by all channels; 'B': per channel. Written by hand: none of
    the installed libraries has it."""

    def __init__(self, channels: int, kind: str = 'A', k: int = 2,
                 reduction: int = 4) -> None:
        super().__init__()
        self.k, self.per_channel = k, kind == 'B'
        out = 2 * k * (channels if self.per_channel else 1)
        hidden = max(channels // reduction, 4)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(),
                                nn.Linear(hidden, out))
        init = torch.zeros(2 * k)  # starts as ReLU: a = (1, 0), b = 0
        init[0] = 1.
        self.register_buffer('init', init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        theta = 2 * torch.sigmoid(self.fc(x.mean((2, 3)))) - 1
        theta = theta.view(n, -1, 2 * self.k) + self.init
        if not self.per_channel:
            theta = theta.expand(n, c, 2 * self.k)
        a, b = theta[..., :self.k], theta[..., self.k:]
        y = x.unsqueeze(-1) * a[:, :, None, None] + b[:, :, None, None]
        return y.max(-1).values


def make_activation(kind: str, channels: int) -> nn.Module:
    """The activation ``kind`` (a key of :data:`TABLE3`) for ``channels``."""
    if kind == 'relu':
        return nn.ReLU()
    if kind == 'gelu':
        return nn.GELU()
    if kind == 'silu':
        return nn.SiLU()
    if kind == 'se_relu':  # mmpretrain's SE block, then ReLU (paper Fig. 3)
        from mmpretrain.models.utils import SELayer
        return nn.Sequential(SELayer(channels, ratio=16), nn.ReLU())
    if kind in ('dynamic_relu_a', 'dynamic_relu_b'):
        return DynamicReLU(channels, kind[-1].upper())
    raise KeyError(kind)


class ConvLayer(nn.Module):
    """3x3 conv + BN + activation, with a skip connection where ``skip`` is
    set and the shape allows one."""

    def __init__(self, cin: int, cout: int, stride: int, act: str,
                 skip: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = make_activation(act, cout)
        self.skip = skip and stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn(self.conv(x)))
        return x + y if self.skip else y


def conv_net30(act: str = 'relu', skip: bool = False,
               num_classes: int = 1000) -> nn.Module:
    """The 30-layer ablation net with activation ``act``."""
    layers, cin = [], 3
    for cout in ABLATION_WIDTHS:
        for i in range(LAYERS_PER_STAGE):
            layers.append(ConvLayer(cin, cout, 2 if i == 0 else 1, act, skip))
            cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(cin, num_classes))


def run_ablation(runs: int, input_size: int, work_dir: str,
                 threads: int = 0, isolate: bool = True,
                 log: Callable[[str], None] = print) -> Dict:
    """Tables 3 and 1b measured (:func:`workers.measure_models`, without
    MACs), each row next to the paper's iPhone 12 figure; a net that both
    tables use is measured once."""
    shape = (1, 3, input_size, input_size)
    variants = {(act, False): f'net30_{act}' for act in TABLE3}
    for act, skip, _ in TABLE1B.values():
        variants.setdefault((act, skip), f'net30_{act}_skip')
    rows = measure_models(
        {name: functools.partial(conv_net30, act, skip)
         for (act, skip), name in variants.items()},
        shape, runs, work_dir, threads, macs=False, isolate=isolate, log=log)
    out = dict(input_shape=list(shape), table3={}, table1b={})
    for act, paper in TABLE3.items():
        out['table3'][act] = dict(rows[variants[(act, False)]],
                                  paper_iphone12_ms=paper)
    for name, (act, skip, paper) in TABLE1B.items():
        out['table1b'][name] = dict(rows[variants[(act, skip)]],
                                    paper_iphone12_ms=paper)
    return out
