"""`make demo-seg`: DeepLabV3-MobileOne-S0 trained from scratch on synthetic shapes.

    python tools/demo_seg.py [--work-dir work_dirs/demo_seg] [--data-root data/shapes_seg]
"""
import argparse
import sys

from mobileone_mm.demo_seg import run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_seg')
    parser.add_argument('--data-root', default='data/shapes_seg')
    parser.add_argument('--num-train', type=int, default=800)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    summary = run(args.work_dir, args.data_root, args.num_train, args.num_val,
                  args.seed)
    if summary['miou_fused'] != summary['miou_unfused']:
        sys.exit('error: fused and unfused mIoU differ')


if __name__ == '__main__':
    main()
