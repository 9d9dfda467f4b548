import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mobileone_mm.datasets import SHAPES_CLASSES, generate_shapes
from mobileone_mm.datasets.shapes import shape_size_range


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


@pytest.mark.parametrize('size, expected', [
    (128, (28, 56)),  # the detection demo's images: generate()'s defaults
    (96, (21, 42)),   # the segmentation demo's images
    (64, (14, 28))])
def test_shape_sizes_scale_with_the_image(size, expected):
    assert shape_size_range(size) == expected


def test_scaled_shapes_fit_the_range(tmp_path):
    min_size, max_size = shape_size_range(96)
    files = generate_shapes(str(tmp_path), num_train=4, num_val=1, size=96,
                            min_size=min_size, max_size=max_size, seed=0)
    boxes = [a['bbox'] for a in json.load(open(files['train']))['annotations']]
    # a circle of diameter s covers s + 1 pixels (cv2.circle, radius s // 2)
    assert boxes and all(max(w, h) <= max_size + 1 for _, _, w, h in boxes)
