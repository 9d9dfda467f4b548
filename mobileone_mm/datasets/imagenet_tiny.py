"""A tiny data set in the ImageNet-1k layout that mmpretrain's ``ImageNet``
reads, for demos and tests (no ImageNet can be downloaded here).

Each image holds one shape of the synthetic shapes data set (see
``shapes.py``) on a textured background; its label is the shape's class
(0 square, 1 circle, 2 triangle), an index into the 1000 ImageNet classes
the configs keep, so the real configs run unchanged on it.
"""
import os
import os.path as osp
from typing import Dict

import cv2
import numpy as np

from .shapes import CLASSES, make_image


def generate(out_dir: str, num_train: int = 24, num_val: int = 12,
             size: int = 96, seed: int = 0) -> Dict[str, str]:
    """Write the data set under ``out_dir`` (deterministic for a seed).

    Layout (that of ImageNet as mmpretrain documents it)::

        out_dir/train/<class>/<class>_<i>.JPEG
        out_dir/val/ILSVRC2012_val_<i>.JPEG
        out_dir/meta/{train,val}.txt        ("relative/path label" lines)

    Classes alternate, so every split has all three once it has 3 images.

    Returns:
        Paths of the two annotation files.
    """
    if size < 32:
        raise ValueError(f'size must be at least 32 px, got {size}')
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out_dir, 'meta'), exist_ok=True)
    written = {}
    for split, count in (('train', num_train), ('val', num_val)):
        lines = []
        for i in range(count):
            label = i % len(CLASSES)
            while True:  # one shape of the wanted class
                img, instances = make_image(rng, size, 1, size // 3,
                                            size * 2 // 3)
                if instances and instances[0]['label'] == label:
                    break
            if split == 'train':
                name = f'{CLASSES[label]}/{CLASSES[label]}_{i:05d}.JPEG'
            else:
                name = f'ILSVRC2012_val_{i + 1:08d}.JPEG'
            path = osp.join(out_dir, split, name)
            os.makedirs(osp.dirname(path), exist_ok=True)
            cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            lines.append(f'{name} {label}')
        ann_file = osp.join(out_dir, 'meta', f'{split}.txt')
        with open(ann_file, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        written[split] = ann_file
    return written
