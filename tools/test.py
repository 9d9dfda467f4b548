"""Evaluate a checkpoint of a mobileone_mm config.

    python tools/test.py CONFIG CHECKPOINT [--deploy] [--out results.pkl]

``--deploy`` evaluates the re-parameterized (fused) model, as shipped.
"""
import argparse
import os
import sys

from mmengine.config import DictAction

from mobileone_mm.apis import UserError
from mobileone_mm.engine import MissingDataError
from mobileone_mm.engine.launch import test


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save the evaluation logs')
    parser.add_argument('--deploy', action='store_true',
                        help='fuse the MobileOne branches before testing')
    parser.add_argument('--out', help='dump predictions to a .pkl file')
    parser.add_argument('--show-dir', help='save drawn predictions here')
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
        test(args.config, args.checkpoint, work_dir=args.work_dir,
             deploy=args.deploy, out=args.out, show_dir=args.show_dir,
             cfg_options=args.cfg_options, launcher=args.launcher)
    except (UserError, MissingDataError) as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
