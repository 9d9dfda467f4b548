"""Lay the generated shapes data out as Pascal VOC 2012 or ADE20K.

``mobileone_mm.datasets.shapes.generate`` writes images and exact class-index
masks once; these functions arrange them the way mmseg's
``PascalVOCDataset`` and ``ADE20KDataset`` configs expect, so the real VOC /
ADE20K configs (and mmseg's loaders) run unchanged on synthetic data. Images
are hard-linked (copied where links are not possible), masks are rewritten in
each data set's own label convention.
"""
import os
import os.path as osp
import shutil
from typing import Dict, List

import numpy as np
from PIL import Image

from .shapes import PALETTE

SPLITS = ('train', 'val')
ADE_SPLITS = {'train': 'training', 'val': 'validation'}


def _names(shapes_root: str, split: str) -> List[str]:
    path = osp.join(shapes_root, 'ImageSets', f'{split}.txt')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: generate the shapes data first '
            f'(python tools/make_shapes_dataset.py {shapes_root})')
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _link(src: str, dst: str) -> None:
    if osp.exists(dst):
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:  # another file system: copy
        shutil.copyfile(src, dst)


def _read_mask(shapes_root: str, split: str, name: str) -> np.ndarray:
    return np.array(Image.open(osp.join(shapes_root, 'masks', split,
                                        f'{name}.png')))


def _save_palette_png(label: np.ndarray, path: str,
                      palette: List[tuple]) -> None:
    """An indexed PNG, as VOC's SegmentationClass files are: the pixel values
    are the class indices, the palette only colours them for viewers."""
    img = Image.fromarray(label.astype(np.uint8), mode='P')
    flat = [c for rgb in palette for c in rgb]
    img.putpalette(flat + [0] * (768 - len(flat)))
    img.save(path)


def write_voc_layout(shapes_root: str, out_root: str = None) -> str:
    """Pascal VOC 2012 layout (as mmseg's ``pascal_voc12_aug`` expects)::

        out_root/JPEGImages/*.jpg
        out_root/SegmentationClass/*.png      indexed PNG, 0 = background
        out_root/SegmentationClassAug/*.png   (the train masks again, as SBD)
        out_root/ImageSets/Segmentation/{train,val,aug}.txt

    Returns:
        ``out_root`` (default ``shapes_root/VOCdevkit/VOC2012``).
    """
    out_root = out_root or osp.join(shapes_root, 'VOCdevkit', 'VOC2012')
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug',
                'ImageSets/Segmentation'):
        os.makedirs(osp.join(out_root, sub), exist_ok=True)
    lists: Dict[str, List[str]] = {}
    for split in SPLITS:
        names = _names(shapes_root, split)
        for name in names:
            _link(osp.join(shapes_root, split, f'{name}.jpg'),
                  osp.join(out_root, 'JPEGImages', f'{name}.jpg'))
            label = _read_mask(shapes_root, split, name)
            dirs = ['SegmentationClass'] + (
                ['SegmentationClassAug'] if split == 'train' else [])
            for sub in dirs:
                _save_palette_png(label, osp.join(out_root, sub, f'{name}.png'),
                                  PALETTE)
        lists[split] = names
    # VOC's aug.txt lists the SBD images that are not in val; here the train
    # images stand in for them.
    lists['aug'] = lists['train']
    for split, names in lists.items():
        with open(osp.join(out_root, 'ImageSets', 'Segmentation',
                           f'{split}.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')
    return out_root


def write_ade_layout(shapes_root: str, out_root: str = None) -> str:
    """ADE20K layout (as mmseg's ``ade20k`` expects)::

        out_root/images/{training,validation}/*.jpg
        out_root/annotations/{training,validation}/*.png

    ADE20K's annotations use 0 for "other" (ignored with
    ``reduce_zero_label=True``) and 1..150 for the classes, so the shapes
    masks are written as class index + 1: after mmseg's reduction the labels
    equal the VOC-layout masks (0 = background, 1..3 = shapes).

    Returns:
        ``out_root`` (default ``shapes_root/ade/ADEChallengeData2016``).
    """
    out_root = out_root or osp.join(shapes_root, 'ade', 'ADEChallengeData2016')
    for split in SPLITS:
        img_dir = osp.join(out_root, 'images', ADE_SPLITS[split])
        ann_dir = osp.join(out_root, 'annotations', ADE_SPLITS[split])
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for name in _names(shapes_root, split):
            _link(osp.join(shapes_root, split, f'{name}.jpg'),
                  osp.join(img_dir, f'{name}.jpg'))
            label = _read_mask(shapes_root, split, name).astype(np.uint8) + 1
            Image.fromarray(label).save(osp.join(ann_dir, f'{name}.png'))
    return out_root
