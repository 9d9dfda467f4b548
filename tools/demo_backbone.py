"""Backbone demo: build MobileOne S0-S4, fuse, verify, print params/MACs/latency.

    python tools/demo_backbone.py [--runs 50] [--archs s0 s1]
"""
import argparse

import torch
import torch.nn as nn

from mobileone_mm import MobileOne, reparameterize
from mobileone_mm.deploy import count_macs, count_params, torch_latency
from mobileone_mm.models import LinearClassifier


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--archs', nargs='+', default=list(MobileOne.arch_settings))
    parser.add_argument('--runs', type=int, default=30,
                        help='timed runs per model (the paper uses 1000)')
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'batch 1, 224x224, fp32; latency = min of {args.runs} runs after '
          'one warm-up (paper Sec. 3.5)')
    header = (f'{"arch":5} {"params (M)":>10} {"MACs (M)":>9} '
              f'{"fusion max|diff| (f64)":>23} {"unfused ms":>10} '
              f'{"fused ms":>9} {"speed-up":>8}')
    print(header)
    print('-' * len(header))
    for arch in args.archs:
        model = LinearClassifier(MobileOne(arch)).eval()
        for m in model.modules():  # random BN statistics: a real fusion test
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 1.5)
        fused = reparameterize(model)
        x = torch.rand(1, 3, 224, 224, dtype=torch.float64)
        with torch.no_grad():
            ref = model.double()(x)
            diff = float((reparameterize(model)(x) - ref).abs().max())
        model.float()
        shape = (1, 3, 224, 224)
        t_unfused = torch_latency(model, shape, args.runs)['min']
        t_fused = torch_latency(fused, shape, args.runs)['min']
        print(f'{arch:5} {count_params(fused) / 1e6:10.3f} '
              f'{count_macs(fused, shape) / 1e6:9.1f} {diff:23.2e} '
              f'{t_unfused:10.2f} {t_fused:9.2f} {t_unfused / t_fused:7.2f}x')
    print('official (fused, 1000 classes): params 2.078/4.765/7.808/10.078/'
          '14.838 M, MACs 275.1/825.1/1298.4/1895.8/2979.3 M')


if __name__ == '__main__':
    main()
