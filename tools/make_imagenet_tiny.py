"""Generate a tiny data set in the ImageNet layout (one shape per image).

    python tools/make_imagenet_tiny.py data/imagenet_tiny --num-train 24 --num-val 12

Train on it with the real configs by pointing them at it, e.g.
--cfg-options train_dataloader.dataset.data_root=data/imagenet_tiny
val_dataloader.dataset.data_root=data/imagenet_tiny
"""
import argparse
import time

from mobileone_mm.datasets import generate_imagenet_tiny


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', default='data/imagenet_tiny')
    parser.add_argument('--num-train', type=int, default=24)
    parser.add_argument('--num-val', type=int, default=12)
    parser.add_argument('--size', type=int, default=96, help='image side (px)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    start = time.time()
    files = generate_imagenet_tiny(args.out_dir, args.num_train, args.num_val,
                                   args.size, args.seed)
    print(f'wrote {args.num_train} train + {args.num_val} val images to '
          f'{args.out_dir} in {time.time() - start:.1f} s '
          f'({", ".join(files.values())})')


if __name__ == '__main__':
    main()
