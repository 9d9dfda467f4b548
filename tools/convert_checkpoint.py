"""Convert a MobileOne checkpoint (Apple, mmpretrain or timm) to mobileone_mm.

    python tools/convert_checkpoint.py mobileone_s0_unfused.pth.tar \
        checkpoints/mobileone_s0_in1k.pth

The result loads into any downstream config with
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``.
"""
import argparse

from mobileone_mm.checkpoint import FORMATS
from mobileone_mm.checkpoint.validate import convert_file
from mobileone_mm.engine.launch import run_tool


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='source checkpoint (.pth, .pth.tar, '
                        '.bin or .safetensors)')
    parser.add_argument('dst', help='output mmengine checkpoint')
    parser.add_argument('--src-format', choices=sorted(FORMATS),
                        help='source layout (auto-detected when omitted)')
    return parser.parse_args()


def _convert(args) -> None:
    meta = convert_file(args.src, args.dst, args.src_format)
    kind = 'fused' if meta['fused'] else 'unfused'
    head = (f', classifier head with {meta["num_classes"]} classes'
            if meta['num_classes'] else '')
    print(f'{args.src} ({meta["src_format"]}) -> {args.dst}: MobileOne-'
          f'{meta["arch"].upper()} {kind}{head}; loads strictly')


def main():
    run_tool(_convert, parse_args())


if __name__ == '__main__':
    main()
