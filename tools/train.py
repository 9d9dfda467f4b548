"""Train a mobileone_mm config (detection, segmentation or classification).

    python tools/train.py configs/detection/ssdlite_mobileone_s2.py
    python tools/train.py CONFIG --resume            # from the latest checkpoint
    python tools/train.py CONFIG --resume PATH --amp --cfg-options a.b=1

Same options as mmdet's/mmseg's tools/train.py; the config's default_scope
selects the OpenMMLab package.
"""
import argparse
import sys

from mobileone_mm.utils.errors import UserError
from mobileone_mm.engine import MissingDataError
from mobileone_mm.engine.launch import add_common_args, parse_tool_args, train


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='train config file path')
    add_common_args(parser)
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual total batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or without a path '
                        'from the latest checkpoint in the work dir')
    parser.add_argument('--fused-val', action='store_true',
                        help='validate the re-parameterized (fused) model')
    return parse_tool_args(parser)


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
