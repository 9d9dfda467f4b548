"""Calibration data for int8: images drawn from a config's own data set and
prepared exactly as the model sees them at test time (the config's test
pipeline, then the model's ``data_preprocessor``: resize, bgr_to_rgb,
normalisation), so the activation ranges ONNX Runtime calibrates on are the
ranges the deployed model meets."""
import copy
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS

from mobileone_mm.utils.errors import UserError
from ..evaluation import (DataNotFound, check_shape, data_location,
                          innermost_dataset)

__all__ = ['DataNotFound', 'SPLITS', 'RANDOM_CALIBRATION', 'calibration_data',
           'calibration_dataset', 'calibration_indices', 'preprocess',
           'random_batches']

SPLITS = ('train', 'val')
RANDOM_CALIBRATION = ('calibrating on RANDOM input (no checkpoint and no '
                      'data): the int8 model is only good for latency; its '
                      'accuracy and per-layer errors mean nothing')


def calibration_dataset(cfg: Config, split: str = 'train') -> ConfigDict:
    """The ``split`` loader's dataset config with the test pipeline (the
    test-time resize and packing, no augmentation)."""
    if split not in SPLITS:
        raise UserError(f'unknown calibration split {split!r}: choose from '
                        f'{" ".join(SPLITS)}')
    loader = cfg.get(f'{split}_dataloader')
    test_loader = cfg.get('test_dataloader')
    if not loader or not test_loader:
        raise DataNotFound(f'the config has no {split}_dataloader and '
                        f'test_dataloader to draw calibration images from; '
                        f'add them, or pass --calib-split val')
    dataset = copy.deepcopy(loader['dataset'])
    inner = innermost_dataset(dataset)
    test_inner = innermost_dataset(test_loader['dataset'])
    if 'pipeline' not in test_inner:
        raise UserError('the config\'s test_dataloader.dataset has no '
                        'pipeline: calibration uses the test pipeline')
    inner['pipeline'] = copy.deepcopy(test_inner['pipeline'])
    return dataset


def build_dataset(dataset: dict, split: str):
    """``DATASETS.build`` with a missing folder turned into the fix."""
    try:
        built = DATASETS.build(dataset)
    except (FileNotFoundError, NotADirectoryError) as err:
        raise DataNotFound(
            f'{split} data not found ({data_location(dataset)}: {err}); '
            f'generate or download it (the shapes demo: python '
            f'tools/make_shapes_dataset.py data/shapes), or point the config '
            f'at it: --cfg-options {split}_dataloader.dataset.data_root=DIR')
    if len(built) == 0:
        raise UserError(f'the {split} data set at {data_location(dataset)} '
                        f'is empty')
    return built


def calibration_indices(total: int, n: int) -> List[int]:
    """``n`` indices spread evenly over ``total`` images (deterministic).
    Evenly, not the first ``n``: folder-per-class data sets (ImageNet) list
    one class after another, so the first images are all of one class."""
    n = min(n, total)
    return sorted({int(i) for i in np.linspace(0, total - 1, n).round()})


def preprocess(model: nn.Module, samples: Sequence[dict]) -> torch.Tensor:
    """What the network sees: the model's own ``data_preprocessor``
    (normalisation, bgr_to_rgb, padding) in test mode."""
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate(list(samples)), False)
    return data['inputs']


def dataset_batches(cfg: Config, model: nn.Module, split: str, n: int,
                    input_shape: Sequence[int]) -> List[np.ndarray]:
    """``n`` images of ``split`` as ``(1, 3, H, W)`` float32 batches."""
    dataset = build_dataset(calibration_dataset(cfg, split), split)
    batches = []
    for i in calibration_indices(len(dataset), n):
        x = preprocess(model, [dataset[i]]).float().numpy()
        check_shape(x, input_shape, 'calibration images')
        batches.append(np.ascontiguousarray(x, dtype=np.float32))
    return batches


def _normalisation(model: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    prep = getattr(model, 'data_preprocessor', None)
    if getattr(prep, '_enable_normalize', False):
        return prep.mean.float().cpu(), prep.std.float().cpu()
    return torch.zeros(3, 1, 1), torch.ones(3, 1, 1)


def random_batches(model: nn.Module, input_shape: Sequence[int], n: int,
                   seed: int = 0) -> List[np.ndarray]:
    """``n`` uniformly random 0-255 images, normalised as the model's data
    preprocessor would (so the scale is right even if the content is not)."""
    gen = torch.Generator().manual_seed(seed)
    mean, std = _normalisation(model)
    shape = (1, ) + tuple(input_shape[1:])
    return [((torch.rand(*shape, generator=gen) * 255 - mean) / std).numpy()
            for _ in range(n)]


def calibration_data(cfg: Config, model: nn.Module, split: str, n: int,
                     input_shape: Sequence[int], checkpoint: Optional[str],
                     verbose: bool = True) -> Tuple[List[np.ndarray], Dict]:
    """The calibration batches and the report's ``calibration`` section.

    With data: ``n`` images of ``split`` (see :func:`dataset_batches`).
    Without a checkpoint and without data: random input, announced on
    stderr and in the section (``source: 'random'``); with a checkpoint,
    missing data is an error (a trained model calibrated on noise would be
    reported as if it were a real int8 model).
    """
    if n < 1:
        raise UserError(f'--calib-images must be >= 1, got {n}')
    try:
        batches = dataset_batches(cfg, model, split, n, input_shape)
        source = 'dataset'
        where = data_location(calibration_dataset(cfg, split))
    except DataNotFound as err:
        if checkpoint is not None:
            raise
        batches, source, where = random_batches(model, input_shape, n), \
            'random', str(err)
        if verbose:
            print(f'WARNING: {RANDOM_CALIBRATION} ({err})', file=sys.stderr,
                  flush=True)
    info = dict(source=source, split=split if source == 'dataset' else None,
                images=len(batches), data=where,
                pipeline='test pipeline + model.data_preprocessor'
                if source == 'dataset' else 'uniform random pixels, '
                'normalised by model.data_preprocessor')
    if source == 'random':
        info['warning'] = RANDOM_CALIBRATION
    return batches, info
