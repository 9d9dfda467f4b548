"""COCO instances -> VOC semantic masks (the _coco-voc configs' extra data):
the converter module and tools/coco_to_voc_masks.py."""

import numpy as np
import pytest
from PIL import Image

from mobileone_mm.utils.errors import UserError

from ..conftest import ROOT
from ..utils import run_cli


def run_tool(tool, *args, cwd=ROOT):
    """``tools/TOOL`` through its command line, in this process."""
    return run_cli(ROOT / 'tools' / tool, *args, cwd=cwd)


def _coco_with_voc_names(shapes_root, tmp_path):
    """The generated COCO file with COCO category names: square -> person,
    circle -> airplane (VOC classes 15 and 1), triangle -> stop sign (not a
    VOC class: background)."""
    import json
    coco = json.loads((shapes_root / 'annotations' / 'instances_train.json').read_text())
    names = {1: 'person', 2: 'airplane', 3: 'stop sign'}
    coco['categories'] = [dict(c, name=names[c['id']]) for c in coco['categories']]
    path = tmp_path / 'instances_voc.json'
    path.write_text(json.dumps(coco))
    return path, coco


def test_coco_to_voc_converter_on_a_generated_coco_file(shapes_root, tmp_path):
    ann, coco = _coco_with_voc_names(shapes_root, tmp_path)
    out = tmp_path / 'voc_masks'
    proc = run_tool('coco_to_voc_masks.py', ann, out, '--min-pixels', '1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    to_voc = np.zeros(256, np.uint8)
    to_voc[1], to_voc[2], to_voc[3] = 15, 1, 0  # person, aeroplane, background
    written = (tmp_path / 'voc_masks.txt').read_text().split()
    expected = []
    for img in coco['images']:
        stem = img['file_name'][:-4]
        truth = to_voc[np.array(Image.open(shapes_root / 'masks' / 'train' / f'{stem}.png'))]
        if not truth.any():
            assert not (out / f'{stem}.png').exists()
            continue
        expected.append(stem)
        mask = Image.open(out / f'{stem}.png')
        assert mask.mode == 'P'  # indexed, like VOC's SegmentationClass
        assert np.array_equal(np.array(mask), truth)
    assert written == expected and len(expected) >= 4
    assert f'{len(expected)} of {len(coco["images"])} images' in proc.stdout
    # mmseg's VOC dataset reads the converted masks as the _coco-voc configs do
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    ds = DATASETS.build(dict(
        type='PascalVOCDataset', data_root=str(tmp_path),
        data_prefix=dict(img_path=str(shapes_root / 'train'), seg_map_path='voc_masks'),
        ann_file='voc_masks.txt', pipeline=[dict(type='LoadAnnotations')]))
    assert len(ds) == len(expected)
    assert set(np.unique(ds[0]['gt_seg_map']).tolist()) <= {0, 1, 15}


def test_coco_to_voc_overlaps_and_thresholds():
    from mobileone_mm.datasets.coco_to_voc import IGNORE_INDEX, semantic_mask
    boxes = {1: (0, 0, 4, 4), 2: (2, 2, 6, 6), 3: (3, 3, 5, 5), 4: (0, 5, 2, 8)}

    def decode(ann):
        y0, x0, y1, x1 = boxes[ann['id']]
        m = np.zeros((8, 8), np.uint8)
        m[y0:y1, x0:x1] = 1
        return m
    anns = [dict(id=1, category_id=10), dict(id=2, category_id=20),
            dict(id=3, category_id=20), dict(id=4, category_id=99)]
    label = semantic_mask(anns, 8, 8, {10: 15, 20: 7}, decode)
    assert (label[2:4, 2:4] == IGNORE_INDEX).all()  # person/car overlap
    assert (label[:2, :4] == 15).all() and (label[4:6, 4:6] == 7).all()
    assert label[4, 4] == 7  # car over car: one class, kept
    assert (label[5:, :2] == 0).all()  # category 99: not a VOC class


def test_coco_without_voc_categories_is_a_clear_error(shapes_root, tmp_path):
    from mobileone_mm.datasets.coco_to_voc import convert
    # the shapes file's categories are square/circle/triangle
    with pytest.raises(UserError, match='none of the 20 VOC categories'):
        convert(str(shapes_root / 'annotations' / 'instances_train.json'),
                str(tmp_path / 'm'))
