"""The shapes data laid out as Pascal VOC and ADE20K: mmseg's datasets read
exactly the generated masks."""
import numpy as np
import pytest
from PIL import Image

from mobileone_mm.datasets import write_voc_layout


def test_layouts_hold_the_generated_masks_exactly(shapes_root, seg_root):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    voc_root, ade_root = seg_root
    names = (shapes_root / 'ImageSets' / 'val.txt').read_text().split()
    load = [dict(type='LoadAnnotations')]
    voc = DATASETS.build(dict(
        type='PascalVOCDataset', data_root=str(voc_root),
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt', pipeline=load))
    ade = DATASETS.build(dict(
        type='ADE20KDataset', data_root=str(ade_root),
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        pipeline=[dict(type='LoadAnnotations', reduce_zero_label=True)]))
    assert len(voc) == len(ade) == len(names) == 4
    seen = set()
    for i, name in enumerate(sorted(names)):
        truth = np.array(Image.open(shapes_root / 'masks' / 'val' / f'{name}.png'))
        assert np.array_equal(voc[i]['gt_seg_map'], truth)
        assert np.array_equal(ade[i]['gt_seg_map'], truth)
        seen |= set(np.unique(truth).tolist())
    assert seen >= {0, 1}, 'no shapes in the masks: vacuous comparison'


def test_missing_shapes_data_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='make_shapes_dataset.py') as err:
        write_voc_layout(str(tmp_path))
    assert str(tmp_path / 'ImageSets' / 'train.txt') in str(err.value)
