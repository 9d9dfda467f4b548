"""An independent re-statement of apple/ml-mobileone's module layout.

Only used to produce state dicts with the exact key names and shapes of
Apple's released ``mobileone_s*_unfused.pth.tar`` / ``mobileone_s*.pth.tar``
files (stage0..stage4, rbr_conv/rbr_scale/rbr_skip, se.reduce/expand,
linear), and their outputs, for the converter tests.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

APPLE_PARAMS = {  # ml-mobileone's PARAMS
    's0': dict(widths=(0.75, 1.0, 1.0, 2.0), k=4, se=False),
    's1': dict(widths=(1.5, 1.5, 2.0, 2.5), k=1, se=False),
    's2': dict(widths=(1.5, 2.0, 2.5, 4.0), k=1, se=False),
    's3': dict(widths=(2.0, 2.5, 3.0, 4.0), k=1, se=False),
    's4': dict(widths=(3.0, 3.5, 3.5, 4.0), k=1, se=True),
}


class AppleSE(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.reduce = nn.Conv2d(c, int(c * 0.0625), 1)
        self.expand = nn.Conv2d(int(c * 0.0625), c, 1)

    def forward(self, x):
        s = F.avg_pool2d(x, kernel_size=x.shape[-2:])
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(s))))


class AppleBlock(nn.Module):

    def __init__(self, cin, cout, k, stride, groups, branches, se, fused):
        super().__init__()
        self.fused = fused
        self.se = AppleSE(cout) if se else nn.Identity()
        self.activation = nn.ReLU()

        def conv_bn(ks):
            seq = nn.Sequential()
            seq.add_module('conv', nn.Conv2d(cin, cout, ks, stride, ks // 2,
                                             groups=groups, bias=False))
            seq.add_module('bn', nn.BatchNorm2d(cout))
            return seq

        if fused:
            self.reparam_conv = nn.Conv2d(cin, cout, k, stride, k // 2,
                                          groups=groups, bias=True)
            return
        self.rbr_skip = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None
        self.rbr_conv = nn.ModuleList(conv_bn(k) for _ in range(branches))
        self.rbr_scale = conv_bn(1) if k > 1 else None

    def forward(self, x):
        if self.fused:
            return self.activation(self.se(self.reparam_conv(x)))
        out = 0
        if self.rbr_skip is not None:
            out = self.rbr_skip(x)
        if self.rbr_scale is not None:
            out = out + self.rbr_scale(x)
        for conv in self.rbr_conv:
            out = out + conv(x)
        return self.activation(self.se(out))


class AppleMobileOne(nn.Module):

    def __init__(self, variant='s0', num_classes=1000, fused=False):
        super().__init__()
        p = APPLE_PARAMS[variant]
        w = p['widths']
        planes = min(64, int(64 * w[0]))
        self.stage0 = AppleBlock(3, planes, 3, 2, 1, 1, False, fused)
        for i, (base, n) in enumerate(zip((64, 128, 256, 512), (2, 8, 10, 1))):
            out = int(base * w[i])
            n_se = {2: n // 2, 3: n}.get(i, 0) if p['se'] else 0
            blocks = []
            for j in range(n):
                se = j >= n - n_se
                blocks.append(AppleBlock(planes, planes, 3, 2 if j == 0 else 1,
                                         planes, p['k'], se, fused))
                blocks.append(AppleBlock(planes, out, 1, 1, 1, p['k'], se, fused))
                planes = out
            setattr(self, f'stage{i + 1}', nn.Sequential(*blocks))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x):
        for i in range(5):
            x = getattr(self, f'stage{i}')(x)
        return self.linear(self.gap(x).flatten(1))
