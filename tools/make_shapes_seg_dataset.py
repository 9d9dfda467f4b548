"""Generate the synthetic shapes data set and lay it out as VOC and ADE20K.

    python tools/make_shapes_seg_dataset.py [data/shapes_seg] [--size 96]

writes data/shapes_seg/ (the shapes generator's COCO files and masks, made
first if missing), data/shapes_seg/VOCdevkit/VOC2012/ (the VOC layout that
configs/segmentation/deeplabv3_mobileone_s0_shapes.py reads) and
data/shapes_seg/ade/ADEChallengeData2016/ (the ADE20K layout).
"""
import argparse
import os.path as osp
import time

from mobileone_mm.datasets import (generate_shapes, write_ade_layout,
                                   write_voc_layout)
from mobileone_mm.datasets.shapes import shape_size_range


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', default='data/shapes_seg')
    parser.add_argument('--num-train', type=int, default=800)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--size', type=int, default=96, help='image side (px)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    start = time.time()
    if not osp.isfile(osp.join(args.out_dir, 'ImageSets', 'val.txt')):
        min_size, max_size = shape_size_range(args.size)
        generate_shapes(args.out_dir, args.num_train, args.num_val,
                        size=args.size, min_size=min_size, max_size=max_size,
                        seed=args.seed)
    voc = write_voc_layout(args.out_dir)
    ade = write_ade_layout(args.out_dir)
    print(f'VOC layout in {voc}, ADE20K layout in {ade} '
          f'({time.time() - start:.1f} s)')


if __name__ == '__main__':
    main()
