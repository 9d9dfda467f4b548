"""A synthetic shapes data set with exact labels, for demos and tests.

Each image has a textured background and a few filled shapes (square,
circle, triangle) of random colour, size and position that may overlap.
Labels come from the rasterised masks themselves, so they are exact: an
instance's mask is what stays visible after the shapes drawn over it, its box
is the tight box of that mask. Written as COCO instances (``bbox`` + RLE
``segmentation``) and, for segmentation, as VOC-style index PNGs.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

CLASSES = ('square', 'circle', 'triangle')
# Palette for drawing label maps (index 0 = background).
PALETTE = [(0, 0, 0), (220, 20, 60), (0, 128, 255), (60, 180, 75)]


def shape_size_range(size: int) -> Tuple[int, int]:
    """``(min_size, max_size)`` of the shapes in ``size`` px images: the
    28-56 px of :func:`generate`'s 128 px images, scaled with the image, so
    that a smaller data set is the same task at a lower resolution.

    Example:
        >>> shape_size_range(128), shape_size_range(96)
        ((28, 56), (21, 42))
    """
    return round(28 * size / 128), round(56 * size / 128)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-contrast texture: a colour gradient, noise and random stripes."""
    base = rng.uniform(40, 215, size=3)
    tilt = rng.uniform(-40, 40, size=3)
    ramp = np.linspace(-1, 1, size)[None, :, None] * tilt
    img = np.repeat(base[None, None] + ramp, size, axis=0)
    img = img + rng.normal(0, 12, size=(size, size, 3))
    period = rng.integers(6, 18)
    stripes = (np.arange(size)[:, None] + np.arange(size)[None] *
               rng.choice([-1, 0, 1])) // period % 2
    img = img + stripes[..., None] * rng.uniform(-20, 20, size=3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_mask(rng: np.random.Generator, cls: int, size: int,
                min_size: int, max_size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    s = int(rng.integers(min_size, max_size + 1))
    x0 = int(rng.integers(0, size - s + 1))
    y0 = int(rng.integers(0, size - s + 1))
    name = CLASSES[cls]
    if name == 'square':
        mask[y0:y0 + s, x0:x0 + s] = 1
    elif name == 'circle':
        cv2.circle(mask, (x0 + s // 2, y0 + s // 2), s // 2, 1, -1)
    else:  # triangle, apex up
        pts = np.array([[x0 + s // 2, y0], [x0, y0 + s - 1],
                        [x0 + s - 1, y0 + s - 1]], np.int32)
        cv2.fillPoly(mask, [pts], 1)
    return mask


def make_image(rng: np.random.Generator, size: int, max_objects: int,
               min_size: int, max_size: int,
               min_visible: float = 0.6) -> Tuple[np.ndarray, List[dict]]:
    """One image and its instances (``label``, ``mask``, ``bbox`` xywh)."""
    img = _background(rng, size)
    instances: List[dict] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            cls = int(rng.integers(len(CLASSES)))
            mask = _shape_mask(rng, cls, size, min_size, max_size) > 0
            # every instance drawn before must stay mostly visible
            ok = all((inst['mask'] & ~mask).sum() >=
                     min_visible * inst['area_full'] for inst in instances)
            if ok:
                break
        else:
            continue
        for inst in instances:
            inst['mask'] &= ~mask
        colour = rng.integers(0, 256, size=3)
        while np.abs(colour.astype(int) - img[mask].mean(0)).max() < 60:
            colour = rng.integers(0, 256, size=3)
        img[mask] = colour
        instances.append(dict(label=cls, mask=mask, area_full=int(mask.sum())))
    for inst in instances:
        ys, xs = np.nonzero(inst['mask'])
        inst['bbox'] = [int(xs.min()), int(ys.min()),
                        int(xs.max() - xs.min() + 1),
                        int(ys.max() - ys.min() + 1)]
    return img, instances


def generate(out_dir: str, num_train: int = 800, num_val: int = 200,
             size: int = 128, max_objects: int = 8, min_size: int = 28,
             max_size: int = 56, seed: int = 0) -> Dict[str, str]:
    """Write the data set under ``out_dir`` (deterministic for a seed).

    Layout::

        out_dir/annotations/instances_{train,val}.json   (COCO)
        out_dir/{train,val}/*.jpg
        out_dir/masks/{train,val}/*.png                  (class index maps)
        out_dir/ImageSets/{train,val}.txt

    Returns:
        Paths of the two annotation files.
    """
    from pycocotools import mask as mask_utils
    if max_size > size:
        raise ValueError(f'max_size {max_size} > image size {size}')
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'ImageSets'), exist_ok=True)
    categories = [dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)]
    written = {}
    for split, count in (('train', num_train), ('val', num_val)):
        os.makedirs(osp.join(out_dir, split), exist_ok=True)
        os.makedirs(osp.join(out_dir, 'masks', split), exist_ok=True)
        images, annotations, names = [], [], []
        for i in range(count):
            img, instances = make_image(rng, size, max_objects, min_size,
                                        max_size)
            name = f'{split}_{i:05d}'
            cv2.imwrite(osp.join(out_dir, split, f'{name}.jpg'), img,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            label_map = np.zeros((size, size), np.uint8)
            for inst in instances:
                label_map[inst['mask']] = inst['label'] + 1
            cv2.imwrite(osp.join(out_dir, 'masks', split, f'{name}.png'),
                        label_map)
            names.append(name)
            image_id = i + 1
            images.append(dict(id=image_id, file_name=f'{name}.jpg',
                               width=size, height=size))
            for inst in instances:
                rle = mask_utils.encode(
                    np.asfortranarray(inst['mask'].astype(np.uint8)))
                rle['counts'] = rle['counts'].decode('ascii')
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=image_id,
                    category_id=inst['label'] + 1, bbox=inst['bbox'],
                    area=int(inst['mask'].sum()), segmentation=rle,
                    iscrowd=0))
        ann_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
        with open(ann_file, 'w') as f:
            json.dump(dict(images=images, annotations=annotations,
                           categories=categories), f)
        with open(osp.join(out_dir, 'ImageSets', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')
        written[split] = ann_file
    return written
