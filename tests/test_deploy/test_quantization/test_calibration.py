"""Calibration data (mobileone_mm/deploy/calibration.py): the config's test
pipeline and the model's data preprocessor, deterministic; random input only
without data and without a checkpoint, and then said so."""
import copy

import cv2
import numpy as np
import pytest

from mobileone_mm.deploy.quantization.calibration import (calibration_data,
                                             calibration_dataset,
                                             calibration_indices)
from mobileone_mm.utils.errors import UserError

from .quant_cases import CLS_CFG, DET_CFG, cls_options, det_options, \
    fused_model


@pytest.fixture(scope='module')
def det(shapes_root):
    return fused_model(DET_CFG, det_options(shapes_root))


def test_indices_spread_evenly_and_deterministically():
    assert calibration_indices(10, 4) == [0, 3, 6, 9]
    assert calibration_indices(3, 8) == [0, 1, 2]
    assert calibration_indices(100, 1) == [0]


def test_test_pipeline_replaces_the_training_augmentation(det):
    cfg = det[0]
    dataset = calibration_dataset(cfg, 'train')
    assert dataset.ann_file == cfg.train_dataloader.dataset.ann_file
    assert dataset.pipeline == cfg.test_dataloader.dataset.pipeline
    assert 'RandomFlip' not in [t['type'] for t in dataset.pipeline]
    with pytest.raises(UserError, match='unknown calibration split'):
        calibration_dataset(cfg, 'test')


def test_images_are_what_the_model_sees(det, shapes_root):
    cfg, model, example = det
    batches, info = calibration_data(cfg, model, 'train', 3, example.shape,
                                     checkpoint='given')
    again, _ = calibration_data(cfg, model, 'train', 3, example.shape,
                                checkpoint='given')
    assert info['source'] == 'dataset' and info['split'] == 'train'
    assert info['images'] == 3 and len(batches) == 3
    for a, b in zip(batches, again):
        np.testing.assert_array_equal(a, b)
    assert all(b.shape == (1, 3, 128, 128) and b.dtype == np.float32
               for b in batches)
    # by hand: the 128 px image, BGR -> RGB, the config's mean and std
    first = sorted((shapes_root / 'train').glob('*.jpg'))[0]
    img = cv2.imread(str(first))[..., ::-1].astype(np.float32)
    prep = cfg.model.data_preprocessor
    expected = (img - np.array(prep.mean)) / np.array(prep.std)
    np.testing.assert_allclose(batches[0][0], expected.transpose(2, 0, 1),
                               atol=1e-5)


def test_val_split_draws_from_val(det):
    cfg, model, example = det
    _, info = calibration_data(cfg, model, 'val', 1, example.shape, None)
    assert info['split'] == 'val' and 'instances_val' in info['data']


def test_missing_data_without_checkpoint_is_random_and_said(capsys):
    cfg, model, example = fused_model(CLS_CFG, dict(
        cls_options(), **{'train_dataloader.dataset.data_root':
                          '/no/such/imagenet'}))
    batches, info = calibration_data(cfg, model, 'train', 2, example.shape,
                                     checkpoint=None)
    assert info['source'] == 'random' and info['split'] is None
    assert 'RANDOM' in info['warning'] and '/no/such/imagenet' in info['data']
    assert 'WARNING' in capsys.readouterr().err
    assert len(batches) == 2 and batches[0].shape == example.shape
    # normalised as the preprocessor would: 0..255 pixels -> about -2..2.6
    assert -2.2 < batches[0].min() < -1.5 and 2.0 < batches[0].max() < 2.7


def test_missing_data_with_checkpoint_names_the_fix(det):
    cfg, model, example = det
    cfg = copy.deepcopy(cfg)
    cfg.train_dataloader.dataset.data_root = '/no/shapes/'
    with pytest.raises(UserError) as err:
        calibration_data(cfg, model, 'train', 2, example.shape, 'ckpt.pth')
    msg = str(err.value)
    assert '/no/shapes' in msg and 'train_dataloader.dataset.data_root' in msg
    assert 'make_shapes_dataset' in msg


def test_bad_count(det):
    cfg, model, example = det
    with pytest.raises(UserError, match='--calib-images must be >= 1'):
        calibration_data(cfg, model, 'train', 0, example.shape, None)


def test_wrong_test_size_is_refused(det):
    cfg, model, _ = det
    with pytest.raises(UserError, match='exported at'):
        calibration_data(cfg, model, 'train', 1, (1, 3, 96, 96), None)
