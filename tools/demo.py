"""`make demo`: SSDLite-MobileOne-S0 trained from scratch on synthetic shapes.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/shapes]
"""
import argparse
import sys

from mobileone_mm.demo import run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/shapes')
    parser.add_argument('--num-train', type=int, default=800)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    summary = run(args.work_dir, args.data_root, args.num_train, args.num_val,
                  args.seed)
    if summary['map_fused'] != summary['map_unfused']:
        sys.exit('error: fused and unfused mAP differ')


if __name__ == '__main__':
    main()
