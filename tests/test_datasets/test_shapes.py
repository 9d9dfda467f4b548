import json

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from mobileone_mm.datasets import SHAPES_CLASSES, generate_shapes


def test_labels_are_exact_and_deterministic(tmp_path):
    files = generate_shapes(str(tmp_path / 'a'), num_train=6, num_val=3,
                            size=96, min_size=16, max_size=48, seed=3)
    generate_shapes(str(tmp_path / 'b'), num_train=6, num_val=3, size=96,
                    min_size=16, max_size=48, seed=3)
    coco = json.load(open(files['train']))
    again = json.load(open(tmp_path / 'b' / 'annotations' / 'instances_train.json'))
    assert coco == again  # same seed, same data set
    assert [c['name'] for c in coco['categories']] == list(SHAPES_CLASSES)
    assert len(coco['images']) == 6 and coco['annotations']
    for img in coco['images']:
        stem = img['file_name'][:-4]
        label_map = cv2.imread(str(tmp_path / 'a' / 'masks' / 'train' / f'{stem}.png'),
                               cv2.IMREAD_UNCHANGED)
        anns = [a for a in coco['annotations'] if a['image_id'] == img['id']]
        union = np.zeros_like(label_map)
        for ann in anns:
            m = mask_utils.decode(ann['segmentation']).astype(bool)
            ys, xs = np.nonzero(m)
            # the box is the tight box of the visible mask
            assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                   ys.max() - ys.min() + 1]
            assert ann['area'] == m.sum() > 0
            # the semantic mask agrees with the instance mask
            assert (label_map[m] == ann['category_id']).all()
            union[m] = 1
        assert ((label_map > 0) == (union > 0)).all()
    other = generate_shapes(str(tmp_path / 'c'), num_train=6, num_val=3,
                            size=96, min_size=16, max_size=48, seed=4)
    assert json.load(open(other['train'])) != coco
