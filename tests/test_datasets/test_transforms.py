"""ScaledAutoAugment: mmpretrain's AutoAugment with its magnitudes scaled
by a strength alpha (progressive learning, supp. C.1, Table 10)."""
import numpy as np
import pytest
from mmengine.registry import TRANSFORMS, init_default_scope

from mobileone_mm.datasets.transforms import ScaledAutoAugment, op_level


def _magnitude(op) -> float:
    """The magnitude an mmpretrain op applies (level form or explicit)."""
    if op.magnitude_range is None:
        for key in ('angle', 'thr', 'bits', 'magnitude'):
            if getattr(op, key, None) is not None:
                return float(getattr(op, key))
    return float(op.random_magnitude())


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    """mmpretrain's own AutoAugment, the reference here, builds its ops in
    the default scope (another test may have left mmseg's or mmdet's)."""
    init_default_scope('mmpretrain')


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
    assert checked == 28  # of the 50 ops: all but Equalize/Invert/AutoContrast


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
        assert len(levels) == len(full) == len(preset) == 25
        assert [len(sub) for sub in levels] == [len(sub) for sub in preset]
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


def test_builds_its_ops_whatever_the_callers_scope():
    # a segmentation or detection scope has no Posterize/Rotate: the ops
    # must still come from mmpretrain
    init_default_scope('mmseg')
    transform = ScaledAutoAugment('imagenet', 0.5)
    ops = [op for sub in _ops(transform) for op in sub]
    assert len(ops) == 50
    assert all(type(op).__module__.startswith('mmpretrain.') for op in ops)
