"""AutoAugment with a strength factor, for MobileOne's progressive learning.

The paper (supp. C.1, Table 10) raises the AutoAugment strength ``alpha`` with
the image resolution: "The magnitude for augmentations in AutoAugment policy
are between 0-9, we simply multiply alpha with this value". mmpretrain's
``AutoAugment`` stores its ``'imagenet'`` policy with the magnitudes already
resolved (``Rotate(angle=30)``, ``Solarize(thr=113.8)``), so there is no level
to multiply. :class:`ScaledAutoAugment` turns each op back into mmpretrain's
own level form (``magnitude_level`` + ``magnitude_range``), multiplies the
level by ``alpha`` and hands the policy to mmpretrain's ``AutoAugment``; the
ops themselves are mmpretrain's. Only this scaling is written by hand:
mmpretrain has no strength parameter for AutoAugment.
"""
import copy
from typing import Dict, List, Sequence, Tuple, Union

from mmengine.registry import DefaultScope
from mmpretrain.datasets.transforms.auto_augment import (AUTOAUG_POLICIES,
                                                         AutoAugment)

from mobileone_mm.registry import TRANSFORMS

# AutoAugment (Cubuk et al., CVPR 2019, appendix Table 6): each op's magnitude
# is one of 10 levels, 0..9, spread uniformly over its range. Here: the
# mmpretrain argument holding the magnitude, and its values at levels 0 and 9
# (mmpretrain's enhance ops take ``factor - 1``, so [0.1, 1.9] is (0, 0.9);
# Translate is a fraction of the image: 150 px of 331).
MAX_LEVEL = 9
AA_RANGES: Dict[str, Tuple[str, Tuple[float, float]]] = {
    'Shear': ('magnitude', (0., 0.3)),
    'Translate': ('magnitude', (0., 150 / 331)),
    'Rotate': ('angle', (0., 30.)),
    'Solarize': ('thr', (256., 0.)),
    'Posterize': ('bits', (8., 4.)),
    'Contrast': ('magnitude', (0., 0.9)),
    'ColorTransform': ('magnitude', (0., 0.9)),
    'Brightness': ('magnitude', (0., 0.9)),
    'Sharpness': ('magnitude', (0., 0.9)),
}
# Ops without a magnitude: strength does not apply to them.
NO_MAGNITUDE = ('AutoContrast', 'Equalize', 'Invert')


def op_level(op: dict) -> float:
    """The AutoAugment level (0..9) of an op given with an explicit
    magnitude, e.g. ``Rotate(angle=30)`` -> 9, ``Solarize(thr=256/9*4)`` -> 5.

    mmpretrain's preset stores Posterize's bits already rounded, so its level
    is the one of the rounded bits (bits=5 -> 6.75); at strength 1 every op
    gives back exactly the preset's magnitude.
    """
    name = str(op['type']).split('.')[-1]
    key, (low, high) = AA_RANGES[name]
    return (float(op[key]) - low) / (high - low) * MAX_LEVEL


def scale_op(op: dict, strength: float) -> dict:
    """One op of a policy with its magnitude level multiplied by
    ``strength``, in mmpretrain's ``magnitude_level``/``magnitude_range`` form."""
    op = copy.deepcopy(op)
    name = str(op['type']).split('.')[-1]
    if 'magnitude_level' in op or 'magnitude_range' in op:
        # already in level form: scale the level as given
        op['magnitude_level'] = op.get('magnitude_level', 10) * strength
        return op
    if name in NO_MAGNITUDE:
        return op
    if name not in AA_RANGES or AA_RANGES[name][0] not in op:
        raise ValueError(
            f'ScaledAutoAugment cannot scale {op}: give it as magnitude_level '
            f'+ magnitude_range, or use one of {sorted(AA_RANGES)} with its '
            f'explicit magnitude')
    key, value_range = AA_RANGES[name]
    level = op_level(op)
    del op[key]
    op.update(magnitude_level=level * strength, magnitude_range=value_range,
              total_level=MAX_LEVEL)
    return op


@TRANSFORMS.register_module()
class ScaledAutoAugment(AutoAugment):
    """mmpretrain's ``AutoAugment`` with every op's magnitude level (0..9)
    multiplied by ``strength`` (the paper's alpha, supp. C.1 / Table 10).

    ``strength=1`` reproduces mmpretrain's ``AutoAugment`` exactly; which
    sub-policy is picked and each op's probability do not change, only how
    strong an applied op is.

    Args:
        policies: ``'imagenet'`` (mmpretrain's preset) or a list of
            sub-policies as for ``AutoAugment``.
        strength: alpha in [0, 1].
        hparams: as for ``AutoAugment`` (``pad_val``, ``interpolation``).

    Example:
        >>> import numpy as np
        >>> t = ScaledAutoAugment('imagenet', strength=0.3)
        >>> t(dict(img=np.zeros((32, 32, 3), np.uint8)))['img'].shape
        (32, 32, 3)
    """

    def __init__(self,
                 policies: Union[str, List[List[dict]]] = 'imagenet',
                 strength: float = 1.0,
                 hparams: dict = dict(pad_val=128)) -> None:
        if not 0. <= strength <= 1.:
            raise ValueError(f'strength (alpha) must be in [0, 1], got '
                             f'{strength}')
        if isinstance(policies, str):
            if policies not in AUTOAUG_POLICIES:
                raise ValueError(f'unknown AutoAugment policies {policies!r}; '
                                 f'presets: {sorted(AUTOAUG_POLICIES)}')
            policies = AUTOAUG_POLICIES[policies]
        self.strength = float(strength)
        scaled = [[scale_op(op, self.strength) for op in sub]
                  for sub in policies]
        # mmpretrain's ops, whatever scope the caller is in (a registry
        # build otherwise looks them up in the default scope's registry)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            super().__init__(policies=scaled, hparams=hparams)

    def magnitude_levels(self) -> List[Sequence[float]]:
        """The scaled level of every op, per sub-policy (None: no magnitude)."""
        return [[op.get('magnitude_level') for op in sub]
                for sub in self.policies]

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f'strength={self.strength})'
