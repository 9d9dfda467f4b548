"""Fuse a trained model's MobileOne blocks and write a deploy checkpoint.

    python tools/reparameterize.py CONFIG CHECKPOINT OUT

Works for classification, detection and segmentation configs. The fused
model's outputs are checked against the unfused ones before anything is
written; load the result with ``--cfg-options model.backbone.deploy=True``.
"""
import argparse
import os
import sys

import torch

from mobileone_mm import reparameterize
from mobileone_mm.apis import build_model, input_shape_from_config, load_config
from mobileone_mm.deploy.compare import compare_models
from mobileone_mm.utils.errors import UserError


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out')
    parser.add_argument('--rtol', type=float, default=1e-4,
                        help='allowed max |fused - unfused| relative to the '
                        'largest output (float32)')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        if os.path.exists(args.out) and os.path.exists(args.checkpoint) and \
                os.path.samefile(args.out, args.checkpoint):
            raise UserError(f'refusing to overwrite the input {args.checkpoint}')
        cfg = load_config(args.config)
        model = build_model(cfg, args.checkpoint)
    except UserError as err:
        sys.exit(f'error: {err}')
    fused = reparameterize(model)
    x = torch.rand(*input_shape_from_config(cfg))
    check = compare_models(fused, model, x, args.rtol)
    diff, scale = check['max_abs_diff'], check['max_abs_output']
    print(f'fused vs unfused on {tuple(x.shape)}: max |diff| = {diff:.3g} '
          f'(largest output {scale:.3g})')
    if diff > args.rtol * max(scale, 1.0):
        sys.exit(f'error: fused outputs differ by {diff:.3g} > '
                 f'{args.rtol} x {max(scale, 1.0):.3g}; nothing written')
    meta = dict(fused=True, config=os.path.basename(args.config),
                src=os.path.basename(args.checkpoint))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(dict(state_dict=fused.state_dict(), meta=meta), args.out)
    print(f'wrote {args.out}; load it with '
          '--cfg-options model.backbone.deploy=True')


if __name__ == '__main__':
    main()
