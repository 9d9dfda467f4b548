"""COCO instance annotations -> VOC semantic masks (for the `_coco-voc` configs).

    python tools/coco_to_voc_masks.py data/coco/annotations/instances_train2017.json \
        data/coco/voc_masks/train2017

writes data/coco/voc_masks/train2017/*.png (VOC class indices, 255 = ignore)
and the image list data/coco/voc_masks/train2017.txt.
"""
import argparse
import os.path as osp
import sys
import time

from mobileone_mm.datasets.coco_to_voc import convert
from mobileone_mm.engine.launch import run_tool


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('ann_file', help='COCO instances json')
    parser.add_argument('out_dir', help='directory for the PNG masks')
    parser.add_argument('--list-file', help='image list to write (default: '
                        'OUT_DIR.txt)')
    parser.add_argument('--min-pixels', type=int, default=1000,
                        help='skip images with fewer VOC-class pixels')
    args = parser.parse_args()
    if not osp.isfile(args.ann_file):
        sys.exit(f'error: COCO annotation file not found: {args.ann_file} '
                 f'(expected data/coco/annotations/instances_train2017.json '
                 f'from cocodataset.org)')
    start = time.time()
    run_tool(_convert, args, start)


def _convert(args, start: float) -> None:
    stats = convert(args.ann_file, args.out_dir, args.list_file,
                    args.min_pixels)
    list_file = args.list_file or args.out_dir.rstrip('/') + '.txt'
    print(f'{stats["written"]} of {stats["images"]} images have VOC objects '
          f'(>= {args.min_pixels} px): masks in {args.out_dir}, list in '
          f'{list_file} ({time.time() - start:.0f} s)')


if __name__ == '__main__':
    main()
