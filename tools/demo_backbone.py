"""Backbone demo: build MobileOne S0-S4, fuse, verify, print params/MACs/latency.

    python tools/demo_backbone.py [--runs 50] [--archs s0 s1]

Exits non-zero when a fused model's outputs differ from the unfused one's.
"""
import argparse
import sys

from mobileone_mm import MobileOne
from mobileone_mm.demos.backbone import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    archs = list(MobileOne.arch_settings)
    parser.add_argument('--archs', nargs='+', default=archs, choices=archs)
    parser.add_argument('--runs', type=int, default=30,
                        help='timed runs per model (the paper uses 1000)')
    args = parser.parse_args(argv)
    wrong = [row['arch'] for row in run(args.archs, args.runs)
             if not row['fusion_ok']]
    if wrong:
        return f'error: fusion changed the outputs of {" ".join(wrong)}'
    return 0


if __name__ == '__main__':
    sys.exit(main())
