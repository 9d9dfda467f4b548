"""COCO instance annotations -> Pascal VOC semantic masks.

The paper trained its VOC segmentation models on COCO and VOC together
(supp. E.1, following MobileViT). COCO has all 20 VOC classes among its 80
categories; this module paints each COCO image's instances of those 20 into a
VOC class-index mask (0 = background, 1..20 = VOC classes in mmseg's
``PascalVOCDataset`` order, 255 = ignore) and drops the other 60 categories
into the background.

Masks are decoded with pycocotools (polygons, RLE and uncompressed RLE).
"""
import os
import os.path as osp
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np
from PIL import Image

from mobileone_mm.utils.errors import UserError

IGNORE_INDEX = 255

# COCO category name -> VOC class name. The same 20 categories as the
# torchvision segmentation reference (COCO ids 5, 2, 16, 9, 44, 6, 3, 17, 62,
# 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72); by name so that any COCO-format
# file with the standard names converts.
COCO_TO_VOC = {
    'airplane': 'aeroplane', 'bicycle': 'bicycle', 'bird': 'bird',
    'boat': 'boat', 'bottle': 'bottle', 'bus': 'bus', 'car': 'car',
    'cat': 'cat', 'chair': 'chair', 'cow': 'cow',
    'dining table': 'diningtable', 'dog': 'dog', 'horse': 'horse',
    'motorcycle': 'motorbike', 'person': 'person',
    'potted plant': 'pottedplant', 'sheep': 'sheep', 'couch': 'sofa',
    'train': 'train', 'tv': 'tvmonitor',
}


def voc_metainfo() -> dict:
    """VOC class names and palette from mmseg's ``PascalVOCDataset``."""
    from mmseg.datasets import PascalVOCDataset
    return PascalVOCDataset.METAINFO


def category_to_voc_index(categories: Iterable[dict]) -> Dict[int, int]:
    """COCO ``category_id`` -> VOC class index for the 20 shared classes."""
    voc_classes = list(voc_metainfo()['classes'])
    return {c['id']: voc_classes.index(COCO_TO_VOC[c['name']])
            for c in categories if c['name'] in COCO_TO_VOC}


def semantic_mask(anns: List[dict], height: int, width: int,
                  cat_to_voc: Dict[int, int],
                  decode: Callable[[dict], np.ndarray]) -> np.ndarray:
    """Paint one image's instances into a VOC class-index map.

    Pixels covered by instances of two different VOC classes are set to
    ``IGNORE_INDEX``: COCO gives no depth order, so either label could be
    wrong. (torchvision's reference ignores every overlap; overlaps of the
    same class are unambiguous and are kept here.)

    Args:
        anns: The image's COCO annotations.
        height, width: Image size.
        cat_to_voc: From :func:`category_to_voc_index`.
        decode: Annotation -> binary ``(height, width)`` mask
            (``pycocotools.coco.COCO.annToMask``).
    """
    label = np.zeros((height, width), np.uint8)
    for ann in anns:
        index = cat_to_voc.get(ann['category_id'])
        if index is None:
            continue
        mask = decode(ann).astype(bool)
        conflict = mask & (label != 0) & (label != index)
        label[mask & (label == 0)] = index
        label[conflict] = IGNORE_INDEX
    return label


def save_voc_png(label: np.ndarray, path: str) -> None:
    """An indexed PNG with the VOC palette, like VOC's SegmentationClass."""
    img = Image.fromarray(label, mode='P')
    flat = [c for rgb in voc_metainfo()['palette'] for c in rgb]
    flat += [0] * (768 - len(flat))
    flat[3 * IGNORE_INDEX:3 * IGNORE_INDEX + 3] = [224, 224, 192]  # VOC's
    img.putpalette(flat)
    img.save(path)


def convert(ann_file: str, out_dir: str, list_file: Optional[str] = None,
            min_pixels: int = 1000) -> Dict[str, int]:
    """Write a VOC mask for every COCO image with VOC objects.

    Args:
        ann_file: COCO instances json (e.g. ``instances_train2017.json``).
        out_dir: Where ``<image stem>.png`` masks go.
        list_file: Text file listing the written stems (an mmseg
            ``ann_file``); default ``out_dir + '.txt'``.
        min_pixels: Skip images with fewer VOC-class pixels (the
            torchvision reference's 1000-pixel rule: tiny objects only
            teach background).

    Returns:
        Counts: ``images`` read, ``written`` masks, ``skipped`` images.
    """
    from pycocotools.coco import COCO
    coco = COCO(ann_file)
    cat_to_voc = category_to_voc_index(coco.loadCats(coco.getCatIds()))
    if not cat_to_voc:
        names = [c['name'] for c in coco.loadCats(coco.getCatIds())][:5]
        raise UserError(f'{ann_file} has none of the 20 VOC categories '
                         f'(COCO names such as "person", "car"); its '
                         f'categories start {names}')
    os.makedirs(out_dir, exist_ok=True)
    list_file = list_file or out_dir.rstrip('/') + '.txt'
    written = []
    image_ids = sorted(coco.getImgIds())
    for image_id in image_ids:
        info = coco.loadImgs(image_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None))
        label = semantic_mask(anns, info['height'], info['width'],
                              cat_to_voc, coco.annToMask)
        if int(((label != 0) & (label != IGNORE_INDEX)).sum()) < min_pixels:
            continue
        stem = osp.splitext(info['file_name'])[0]
        path = osp.join(out_dir, f'{stem}.png')
        os.makedirs(osp.dirname(path), exist_ok=True)
        save_voc_png(label, path)
        written.append(stem)
    with open(list_file, 'w') as f:
        f.write('\n'.join(written) + ('\n' if written else ''))
    return dict(images=len(image_ids), written=len(written),
                skipped=len(image_ids) - len(written))
