"""check_data: one message naming every missing path and the layout."""
import pytest
from mmengine.config import Config

from mobileone_mm.engine import MissingDataError, check_data


def coco_cfg(root, ann_file='annotations/train.json'):
    return Config(dict(train_dataloader=dict(dataset=dict(
        type='CocoDataset', data_root=f'{root}/', ann_file=ann_file,
        data_prefix=dict(img='train/')))))


def test_missing_annotation_file_is_named(tmp_path):
    (tmp_path / 'train').mkdir()
    with pytest.raises(MissingDataError) as err:
        check_data(coco_cfg(tmp_path))
    message = str(err.value)
    assert message.startswith(
        f'data set not found: {tmp_path}/annotations/train.json (relative to ')
    assert f'{tmp_path}/train/' not in message  # it exists
    assert 'expected layout for CocoDataset:\ndata/coco/' in message
    assert 'train_dataloader.dataset.data_root=' in message
    assert isinstance(err.value, FileNotFoundError)


def test_present_data_passes(tmp_path):
    (tmp_path / 'train').mkdir()
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations' / 'train.json').write_text('{}')
    assert check_data(coco_cfg(tmp_path)) is None


def test_wrapped_datasets_and_only_the_named_loaders(tmp_path):
    voc = dict(type='mmseg.PascalVOCDataset', data_root=str(tmp_path / 'voc'),
               ann_file='train.txt', data_prefix=dict(img_path='JPEGImages'))
    ade = dict(type='ADE20KDataset', data_root=str(tmp_path / 'ade'),
               data_prefix=dict(img_path='', seg_map_path='annotations'))
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
            dict(type='RepeatDataset', times=2, dataset=voc), ade])),
        test_dataloader=dict(dataset=dict(type='ImageNet',
                                          data_root=str(tmp_path / 'in')))))
    with pytest.raises(MissingDataError) as err:
        check_data(cfg, loaders=('train_dataloader', 'val_dataloader'))
    message = str(err.value)
    for path in ('voc/train.txt', 'voc/JPEGImages', 'ade/annotations'):
        assert f'{tmp_path}/{path}' in message
    assert 'expected layout for PascalVOCDataset' in message
    assert 'expected layout for ADE20KDataset' in message
    assert 'ImageNet' not in message  # test_dataloader was not asked for
    with pytest.raises(MissingDataError, match=r'data set not found: \S+/in \('):
        check_data(cfg, loaders=('test_dataloader', ))
