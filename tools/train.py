"""Train a mobileone_mm config (detection, segmentation or classification).

    python tools/train.py configs/detection/ssdlite_mobileone_s2.py
    python tools/train.py CONFIG --resume            # from the latest checkpoint
    python tools/train.py CONFIG --resume PATH --amp --cfg-options a.b=1

Same options as mmdet's/mmseg's tools/train.py; the config's default_scope
selects the OpenMMLab package.
"""
import argparse
import os
import sys

from mmengine.config import DictAction

from mobileone_mm.apis import UserError
from mobileone_mm.engine import MissingDataError
from mobileone_mm.engine.launch import train


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where to save logs and checkpoints')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual total batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or without a path '
                        'from the latest checkpoint in the work dir')
    parser.add_argument('--fused-val', action='store_true',
                        help='validate the re-parameterized (fused) model')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    try:
        train(args.config, work_dir=args.work_dir, resume=args.resume,
              amp=args.amp, auto_scale_lr=args.auto_scale_lr,
              fused_val=args.fused_val, cfg_options=args.cfg_options,
              launcher=args.launcher)
    except (UserError, MissingDataError) as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
