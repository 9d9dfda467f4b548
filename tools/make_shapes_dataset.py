"""Generate the synthetic shapes data set (COCO boxes/masks + VOC-style masks).

    python tools/make_shapes_dataset.py data/shapes --num-train 800 --num-val 200
"""
import argparse
import time

from mobileone_mm.datasets import generate_shapes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', default='data/shapes')
    parser.add_argument('--num-train', type=int, default=800)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--size', type=int, default=128, help='image side (px)')
    parser.add_argument('--max-objects', type=int, default=8)
    parser.add_argument('--min-size', type=int, default=28)
    parser.add_argument('--max-size', type=int, default=56)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    start = time.time()
    files = generate_shapes(args.out_dir, args.num_train, args.num_val,
                            args.size, args.max_objects, args.min_size,
                            args.max_size, args.seed)
    print(f'wrote {args.num_train} train + {args.num_val} val images to '
          f'{args.out_dir} in {time.time() - start:.1f} s '
          f'({", ".join(files.values())})')


if __name__ == '__main__':
    main()
