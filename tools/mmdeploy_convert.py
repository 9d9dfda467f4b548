"""Convert a project model with mmdeploy 1.3.1 (what mmdeploy's own
tools/deploy.py does; the PyPI wheel does not ship it).

    python tools/mmdeploy_convert.py DEPLOY_CFG MODEL_CFG [CHECKPOINT]
        --work-dir DIR [--img IMG] [--device cpu] [--check]

DEPLOY_CFG: one of configs/deploy/*.py. CHECKPOINT is read as data (no
pickled code runs) and must fit MODEL_CFG's model exactly (keys and shapes):
mmdeploy would load it partly. Without CHECKPOINT the model gets random
weights (saved to DIR/random_init.pth, with a warning). ``--check``
runs the backend model (mmdeploy's wrapper) and PyTorch on IMG and prints
their differences (needs a backend that runs here: ONNX Runtime; and trained
weights: a random detector's class scores saturate and tie, so NMS keeps
different boxes in each).
"""
import argparse
import os
import warnings

from mobileone_mm.deploy import mmdeploy_compat
from mobileone_mm.engine.launch import run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('deploy_cfg')
    parser.add_argument('model_cfg')
    parser.add_argument('checkpoint', nargs='?', default=None)
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--img', default=None,
                        help="image to trace with (default: matplotlib's "
                        'grace_hopper.jpg)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--check', action='store_true',
                        help='compare backend and PyTorch predictions on IMG')
    return parser.parse_args(argv)


def _convert(args) -> None:
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = mmdeploy_compat.random_checkpoint(
            args.model_cfg, os.path.join(args.work_dir, 'random_init.pth'))
        warnings.warn(f'no checkpoint: random weights saved to {checkpoint}'
                      + ('; --check needs trained weights' if args.check
                         else ''))
    files = mmdeploy_compat.convert(args.deploy_cfg, args.model_cfg,
                                    checkpoint, args.work_dir, args.img,
                                    args.device)
    print('backend files: ' + ' '.join(files))
    if args.check:
        outputs = mmdeploy_compat.predict_both(
            args.deploy_cfg, args.model_cfg, checkpoint, files, args.img,
            args.device)
        print('backend vs PyTorch: ' + ', '.join(
            f'{k}={v}' for k, v in mmdeploy_compat.compare(outputs).items()))


def main(argv=None):
    run_tool(_convert, parse_args(argv))


if __name__ == '__main__':
    main()
