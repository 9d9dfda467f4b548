"""Fuse a trained model's MobileOne blocks and write a deploy checkpoint.

    python tools/reparameterize.py CONFIG CHECKPOINT OUT

Works for classification, detection and segmentation configs. The fused
model's outputs are checked against the unfused ones before anything is
written; load the result with ``--cfg-options model.backbone.deploy=True``.
"""
import argparse

from mobileone_mm.deploy.compare import RTOL
from mobileone_mm.deploy.fusion import FusionCheckFailed, fuse_checkpoint
from mobileone_mm.engine.launch import run_tool
from mobileone_mm.utils.errors import UserError


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out')
    parser.add_argument('--rtol', type=float, default=RTOL,
                        help='allowed max |fused - unfused| relative to the '
                        'largest output (float32)')
    return parser.parse_args()


def _fuse(args) -> None:
    try:
        fuse_checkpoint(args.config, args.checkpoint, args.out, args.rtol,
                        verbose=True)
    except FusionCheckFailed as err:  # nothing was written
        raise UserError(str(err))
    print(f'wrote {args.out}; load it with '
          '--cfg-options model.backbone.deploy=True')


def main():
    run_tool(_fuse, parse_args())


if __name__ == '__main__':
    main()
