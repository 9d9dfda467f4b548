"""The ImageNet-1k configs: they build with our backbone and hold the paper's
recipe (Sec. 3.4, Sec. 4, supp. C.1, Tables 8 and 10); the AutoAugment
strength scaling."""
import functools

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import TRANSFORMS, init_default_scope

from mobileone_mm.apis import build_model
from mobileone_mm.datasets.transforms import ScaledAutoAugment, op_level
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


# ---- ScaledAutoAugment


def _magnitude(op) -> float:
    """The magnitude an mmpretrain op applies (level form or explicit)."""
    if op.magnitude_range is None:
        for key in ('angle', 'thr', 'bits', 'magnitude'):
            if getattr(op, key, None) is not None:
                return float(getattr(op, key))
    return float(op.random_magnitude())


def _ops(transform):
    return [[op for op in sub.transforms] for sub in transform.transforms]


def test_strength_one_is_mmpretrains_autoaugment():
    from mmpretrain.datasets.transforms import AutoAugment
    ours, theirs = ScaledAutoAugment('imagenet', 1.0), AutoAugment('imagenet')
    checked = 0
    for sub_ours, sub_theirs in zip(_ops(ours), _ops(theirs)):
        for a, b in zip(sub_ours, sub_theirs):
            assert type(a) is type(b) and a.prob == b.prob
            if type(a).__name__ in ('Equalize', 'Invert', 'AutoContrast'):
                continue
            assert a.magnitude_range is not None  # level form: scalable
            assert _magnitude(a) == pytest.approx(_magnitude(b), abs=1e-9)
            checked += 1
    assert checked > 20


def test_strength_multiplies_the_0_to_9_level():
    from mmpretrain.datasets.transforms.auto_augment import AUTOAUG_POLICIES
    preset = AUTOAUG_POLICIES['imagenet']
    # the levels behind mmpretrain's magnitudes are AutoAugment's 0..9 ones
    assert op_level(preset[0][1]) == pytest.approx(9)   # Rotate 30 deg
    assert op_level(preset[1][0]) == pytest.approx(5)   # Solarize thr 113.8
    assert op_level(preset[14][1]) == pytest.approx(8)  # Contrast 0.8
    for alpha in (0.3, 0.6):
        levels = ScaledAutoAugment('imagenet', alpha).magnitude_levels()
        full = ScaledAutoAugment('imagenet', 1.0).magnitude_levels()
        for sub, sub_full in zip(levels, full):
            for level, level_full in zip(sub, sub_full):
                if level_full is None:
                    assert level is None
                else:
                    assert level == pytest.approx(alpha * level_full)
    rotate = _ops(ScaledAutoAugment('imagenet', 0.3))[0][1]
    assert _magnitude(rotate) == pytest.approx(9.0)  # 0.3 x level 9 of 30 deg
    solarize = _ops(ScaledAutoAugment('imagenet', 0.6))[1][0]
    assert _magnitude(solarize) == pytest.approx(256 - 256 * 3 / 9)


def test_strength_changes_the_image():
    """A Rotate of level 9 that always fires: alpha 0 leaves the image, alpha
    1 equals mmpretrain's AutoAugment, alpha 0.3 lies in between."""
    from mmpretrain.datasets.transforms import AutoAugment
    policy = [[dict(type='Rotate', angle=30., prob=1.,
                    random_negative_prob=0.)]]
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    img[:, :24] = 0  # structure, so that a rotation moves pixels

    def run(t):
        return t(dict(img=img.copy()))['img'].astype(np.int64)

    ref = run(AutoAugment(policy))
    assert np.array_equal(run(ScaledAutoAugment(policy, 1.0)), ref)
    assert np.array_equal(run(ScaledAutoAugment(policy, 0.0)), img)
    weak = run(ScaledAutoAugment(policy, 0.3))
    assert not np.array_equal(weak, img) and not np.array_equal(weak, ref)
    # 9 deg moves fewer pixels than 30 deg
    assert np.abs(weak - img).mean() < np.abs(ref - img).mean()


@pytest.mark.parametrize('kwargs, match', [
    (dict(strength=1.5), 'strength'),
    (dict(policies='cifar'), 'unknown AutoAugment policies'),
    (dict(policies=[[dict(type='Cutout', shape=8)]]), 'cannot scale'),
])
def test_bad_arguments_are_clear(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScaledAutoAugment(**kwargs)


def test_builds_from_the_registry_in_mmpretrain_scope():
    init_default_scope('mmpretrain')
    t = TRANSFORMS.build(dict(type='mobileone_mm.ScaledAutoAugment',
                              strength=0.6, hparams=dict(pad_val=0)))
    assert isinstance(t, ScaledAutoAugment) and t.strength == 0.6
    out = t(dict(img=np.zeros((32, 32, 3), np.uint8)))
    assert out['img'].shape == (32, 32, 3)
