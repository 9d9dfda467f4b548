"""The ImageNet-1k configs: they build with our backbone and hold the paper's
recipe (Sec. 3.4, Sec. 4, supp. C.1, Tables 8 and 10)."""
import functools

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mobileone_mm.apis import build_model
from mobileone_mm.datasets.transforms import ScaledAutoAugment
from mobileone_mm.models import MobileOne

from ..conftest import ROOT

CLS = ROOT / 'configs' / 'classification'
ARCHS = ('s0', 's1', 's2', 's3', 's4')
WIDTH = {'s0': 1024, 's1': 1280, 's2': 2048, 's3': 2048, 's4': 2048}
AUTOAUG = {'s0': False, 's1': False, 's2': True, 's3': True, 's4': True}
# supp. C.1, Table 10: (first epoch 0-based, resolution, AutoAugment alpha)
TABLE_10 = [(0, 160, 0.3), (39, 192, 0.6), (114, 224, 1.0)]


@functools.lru_cache(maxsize=None)
def _load(arch: str, deploy: bool) -> Config:
    suffix = '_deploy' if deploy else ''
    return Config.fromfile(str(CLS / f'mobileone_{arch}_in1k{suffix}.py'))


def load(arch: str, deploy: bool = False) -> Config:
    """A config (read once per run; a copy, so tests cannot leak edits)."""
    return _load(arch, deploy).copy()


def hook(cfg: Config, name: str) -> dict:
    found = [h for h in cfg.custom_hooks if h.type == name]
    assert len(found) == 1, f'{name}: {found}'
    return found[0]


def stage_pipelines(cfg: Config) -> list:
    """(first epoch 0-based, pipeline) of each progressive-learning stage."""
    switch = hook(cfg, 'SwitchRecipeHook')
    stages = [(0, cfg.train_dataloader.dataset.pipeline)]
    # SwitchRecipeHook's action_epoch is 1-based: it switches before
    # 0-based epoch action_epoch - 1
    stages += [(s.action_epoch - 1, s.train_pipeline) for s in switch.schedule]
    return stages


@pytest.mark.parametrize('deploy', [False, True], ids=['train', 'deploy'])
@pytest.mark.parametrize('arch', ARCHS)
def test_configs_build_with_our_backbone(arch, deploy):
    cfg = load(arch, deploy)
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.model.backbone.type == 'mobileone_mm.MobileOne'
    model = build_model(cfg)
    # mmpretrain registers its own MobileOne: ours must be the one built
    assert type(model.backbone) is MobileOne
    assert type(model).__name__ == 'ImageClassifier'
    assert model.backbone.arch_name == arch
    assert model.backbone.is_fused is deploy
    assert model.head.fc.in_features == WIDTH[arch]
    assert model.head.fc.out_features == 1000
    out = model(torch.rand(1, 3, 64, 64), mode='tensor')
    assert out.shape == (1, 1000)


@pytest.mark.parametrize('arch', ARCHS)
def test_deploy_config_differs_only_in_fusion(arch):
    train, deploy = load(arch).to_dict(), load(arch, deploy=True).to_dict()
    assert deploy['model']['backbone'].pop('deploy') is True
    assert 'deploy' not in train['model']['backbone']
    train.pop('filename', None), deploy.pop('filename', None)
    assert train == deploy


@pytest.mark.parametrize('arch', ARCHS)
def test_recipe_values_from_the_paper(arch):
    cfg = load(arch)
    # Sec. 4 / supp. C.1: 300 epochs, batch 256 (8 x 32), SGD momentum 0.9,
    # lr 0.1, weight decay 1e-4 -> 1e-5 by the lr's cosine, label smoothing
    # 0.1, EMA decay 0.9995, evaluation at 224x224
    assert cfg.train_cfg.max_epochs == 300
    assert cfg.train_dataloader.batch_size * 8 == 256
    assert cfg.auto_scale_lr.base_batch_size == 256
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == (
        'SGD', 0.1, 0.9, 1e-4)
    assert 'paramwise_cfg' not in cfg.optim_wrapper  # decay on all params
    lr, wd = cfg.param_scheduler
    assert (lr.type, lr.eta_min) == ('CosineAnnealingLR', 0.)
    assert (wd.type, wd.param_name, wd.eta_min) == (
        'CosineAnnealingParamScheduler', 'weight_decay', 1e-5)
    for sched in (lr, wd):  # "the same cosine schedule", from epoch 0
        assert (sched.T_max, sched.begin, sched.end, sched.by_epoch,
                sched.convert_to_iter_based) == (300, 0, 300, True, True)
    loss = cfg.model.head.loss
    assert (loss.type, loss.label_smooth_val, loss.mode) == (
        'LabelSmoothLoss', 0.1, 'original')
    ema = hook(cfg, 'EMAHook')
    assert 1 - ema.momentum == pytest.approx(0.9995, abs=1e-12)
    assert ema.priority == 'ABOVE_NORMAL'  # before FusedEvalHook (LOW)
    crop = [t for t in cfg.test_pipeline if t.type == 'CenterCrop']
    assert crop[0].crop_size == 224 and cfg.input_size == 224
    assert cfg.val_dataloader.dataset.pipeline == cfg.test_pipeline
    assert cfg.test_dataloader == cfg.val_dataloader
    assert cfg.val_evaluator.type == 'Accuracy'
    assert cfg.train_dataloader.dataset.type == 'ImageNet'
    assert cfg.train_dataloader.dataset.data_root == 'data/imagenet'


@pytest.mark.parametrize('arch', ARCHS)
def test_progressive_learning_table_10(arch):
    cfg = load(arch)
    stages = stage_pipelines(cfg)
    assert len(stages) == len(TABLE_10)
    for (epoch, pipeline), (want_epoch, size, alpha) in zip(stages, TABLE_10):
        assert epoch == want_epoch
        types = [t.type for t in pipeline]
        crop = pipeline[types.index('RandomResizedCrop')]
        assert crop.scale == size
        assert pipeline[types.index('RandomFlip')].prob == 0.5
        aug = [t for t in pipeline if 'AutoAugment' in t.type]
        if AUTOAUG[arch]:  # S2-S4: + AutoAugment, ImageNet policy (Sec. 4)
            assert len(aug) == 1
            assert aug[0].type == 'mobileone_mm.ScaledAutoAugment'
            assert (aug[0].policies, aug[0].strength) == ('imagenet', alpha)
        else:  # S0, S1: random-resized-crop and flip only
            assert set(types) == {'LoadImageFromFile', 'RandomResizedCrop',
                                  'RandomFlip', 'PackInputs'}


def test_stage_pipelines_build():
    """The switched-to pipelines build as SwitchRecipeHook builds them."""
    from mmcv.transforms import Compose
    cfg = load('s2')
    init_default_scope('mmpretrain')
    built = [Compose(p) for _, p in stage_pipelines(cfg)]
    strengths = [t.strength for c in built for t in c.transforms
                 if isinstance(t, ScaledAutoAugment)]
    assert strengths == [0.3, 0.6, 1.0]
