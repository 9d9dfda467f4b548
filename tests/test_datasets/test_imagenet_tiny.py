"""The tiny ImageNet-layout data set: the layout mmpretrain's ImageNet reads,
alternating labels, deterministic for a seed."""
import cv2
import pytest

from mobileone_mm.datasets import SHAPES_CLASSES, generate_imagenet_tiny


def test_layout_and_labels(tmp_path):
    written = generate_imagenet_tiny(str(tmp_path), num_train=4, num_val=3,
                                     size=32, seed=0)
    assert written == {'train': str(tmp_path / 'meta' / 'train.txt'),
                       'val': str(tmp_path / 'meta' / 'val.txt')}
    train = (tmp_path / 'meta' / 'train.txt').read_text().splitlines()
    val = (tmp_path / 'meta' / 'val.txt').read_text().splitlines()
    assert train == ['square/square_00000.JPEG 0', 'circle/circle_00001.JPEG 1',
                     'triangle/triangle_00002.JPEG 2', 'square/square_00003.JPEG 0']
    assert val == ['ILSVRC2012_val_00000001.JPEG 0',
                   'ILSVRC2012_val_00000002.JPEG 1',
                   'ILSVRC2012_val_00000003.JPEG 2']
    for split, lines in (('train', train), ('val', val)):
        for line in lines:
            img = cv2.imread(str(tmp_path / split / line.split()[0]))
            assert img.shape == (32, 32, 3)
    assert sorted(p.name for p in (tmp_path / 'train').iterdir()) == \
        sorted(SHAPES_CLASSES)


def test_mmpretrain_imagenet_reads_it(tmp_path):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS
    generate_imagenet_tiny(str(tmp_path), num_train=3, num_val=3, size=32)
    init_default_scope('mmpretrain')
    ds = DATASETS.build(dict(type='ImageNet', data_root=str(tmp_path),
                             split='val', pipeline=[]))
    assert len(ds) == 3
    assert ds.get_gt_labels().tolist() == [0, 1, 2]
    assert ds.get_data_info(2)['img_path'] == str(
        tmp_path / 'val' / 'ILSVRC2012_val_00000003.JPEG')
    assert len(ds.metainfo['classes']) == 1000


def test_deterministic_for_a_seed(tmp_path):
    a, b, c = (tmp_path / n for n in 'abc')
    for root, seed in ((a, 3), (b, 3), (c, 4)):
        generate_imagenet_tiny(str(root), num_train=3, num_val=0, size=32, seed=seed)
    name = 'train/circle/circle_00001.JPEG'
    assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / name).read_bytes() != (c / name).read_bytes()


def test_too_small_images_are_refused(tmp_path):
    with pytest.raises(ValueError, match='at least 32 px, got 16'):
        generate_imagenet_tiny(str(tmp_path), size=16)
