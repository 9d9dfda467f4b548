"""Train a mobileone_mm config (detection, segmentation or classification).

    python tools/train.py configs/detection/ssdlite_mobileone_s2.py
    python tools/train.py CONFIG --resume            # from the latest checkpoint
    python tools/train.py CONFIG --resume PATH --amp --cfg-options a.b=1
    python tools/train.py CONFIG --cfg-options load_from=CKPT --partial-load

Same options as mmdet's/mmseg's tools/train.py; the config's default_scope
selects the OpenMMLab package.
"""
import argparse

from mobileone_mm.engine.launch import (add_common_args, parse_tool_args,
                                        run_tool, train)


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
                        'from the newest checkpoint in the work dir that loads')
    parser.add_argument('--fused-val', action='store_true',
                        help='validate the re-parameterized (fused) model')
    parser.add_argument('--partial-load', action='store_true',
                        help='let load_from fit the model only partly (e.g. '
                        'fine-tuning with a new head); prints what was not '
                        'loaded')
    parser.add_argument('--allow-fused', action='store_true',
                        help='allow training a fused (deploy=True) MobileOne')
    return parse_tool_args(parser)


def main():
    args = parse_args()
    run_tool(train, args.config, work_dir=args.work_dir, resume=args.resume,
             amp=args.amp, auto_scale_lr=args.auto_scale_lr,
             fused_val=args.fused_val, cfg_options=args.cfg_options,
             launcher=args.launcher, partial_load=args.partial_load,
             allow_fused=args.allow_fused)


if __name__ == '__main__':
    main()
