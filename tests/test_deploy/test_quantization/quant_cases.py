"""Tiny configs for the int8 tests: the demo configs (detection and
segmentation shapes, the ImageNet classifier) with a small MobileOne and
heads, pointed at the session's tiny generated data."""
from pathlib import Path

import numpy as np
import torch

from mobileone_mm.apis import input_shape_from_config, load_config
from mobileone_mm.deploy.model_setup import build_for_deploy
from mobileone_mm.deploy.fusion import reparameterize

from tests.conftest import ROOT

DET_CFG = ROOT / 'configs' / 'detection' / 'ssdlite_mobileone_s0_shapes.py'
SEG_CFG = ROOT / 'configs' / 'segmentation' / \
    'deeplabv3_mobileone_s0_shapes.py'
CLS_CFG = ROOT / 'configs' / 'classification' / 'mobileone_s0_in1k.py'
# Two conv branches: the fusion has something to fold.
ARCH = dict(num_blocks=(1, 1, 1, 1), widths=(8, 16, 16, 32),
            num_conv_branches=(2, 2, 2, 2), num_se_blocks=(0, 0, 0, 0))
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _tiny_arch() -> dict:
    return {'model.backbone.arch': dict(_delete_=True, **ARCH)}


def _loaders(root: Path) -> dict:
    opts = {}
    for loader in LOADERS:
        opts.update({f'{loader}.dataset.data_root': f'{root}/',
                     f'{loader}.batch_size': 4,
                     f'{loader}.num_workers': 0,
                     f'{loader}.persistent_workers': False})
    return opts


def det_options(shapes_root: Path) -> dict:
    """SSDLite on the shapes data at its 128 px, with 16-32 channels."""
    ann = str(shapes_root / 'annotations' / 'instances_val.json')
    neck = (16, 32, 16, 16, 16, 16)
    return dict(_tiny_arch(), **_loaders(shapes_root), **{
        'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann,
        'model.neck.in_channels': (16, 32), 'model.neck.out_channels': neck,
        'model.bbox_head.in_channels': neck})


def seg_options(voc_root: Path) -> dict:
    """DeepLabV3 on the shapes data (VOC layout) at 96 px, 8-channel heads."""
    return dict(_tiny_arch(), **_loaders(voc_root), **{
        'model.decode_head.in_channels': 32, 'model.decode_head.channels': 8,
        'model.auxiliary_head.in_channels': 16,
        'model.auxiliary_head.channels': 8})


def cls_options(size: int = 64) -> dict:
    """The ImageNet classifier, 10 classes, at ``size`` px, no data."""
    return dict(_tiny_arch(), **{
        'input_size': size, 'model.head.in_channels': 32,
        'model.head.num_classes': 10,
        'model.data_preprocessor.num_classes': 10})


def fused_model(config: Path, options: dict):
    """``(cfg, fused model, example input)`` as the quantize tool makes
    them (random weights, BN statistics from random batches)."""
    cfg = load_config(str(config), options)
    shape = input_shape_from_config(cfg)
    model, _ = build_for_deploy(cfg, None, shape, verbose=False)
    example = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    return cfg, reparameterize(model).eval(), example


def snr_db(x: np.ndarray, ref: np.ndarray) -> float:
    return float(20 * np.log10(np.linalg.norm(ref)
                               / max(np.linalg.norm(x - ref), 1e-30)))


def save_checkpoint(config: Path, options: dict, path: Path) -> str:
    """The tiny model of ``config`` with BN statistics from random batches,
    saved as a trained checkpoint would be."""
    cfg = load_config(str(config), options)
    torch.manual_seed(0)
    model, _ = build_for_deploy(cfg, None, input_shape_from_config(cfg),
                                verbose=False)
    torch.save(dict(state_dict=model.state_dict()), path)
    return str(path)
