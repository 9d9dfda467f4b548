"""The models the benchmark compares: MobileOne S0-S4 (train-time and fused)
as ml-mobileone's classifier, and the efficient models that mmpretrain ships,
with the paper's ImageNet top-1 for each."""
import os
from typing import List, Optional

import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mobileone_mm.deploy.fusion import reparameterize
from mobileone_mm.models import LinearClassifier, MobileOne

# ImageNet-1k top-1 (%) from the paper's Table 8 (224x224, no distillation).
PAPER_TOP1 = {
    'mobileone_s0': 71.4, 'mobileone_s1': 75.9, 'mobileone_s2': 77.4,
    'mobileone_s3': 78.1, 'mobileone_s4': 79.4,
    'mobilenet_v2_1.0': 72.0, 'mobilenet_v3_large': 75.2,
    'mobilenet_v3_small': 67.4, 'shufflenet_v2_1.0': 69.4,
    'efficientnet_b0': 77.1, 'mobilevit_s': 78.4, 'mobilevit_xs': 74.8,
    'mobilevit_xxs': 69.0,
}

# The baselines are mmpretrain's own model configs (1000-class heads, no
# weights), read from the installed package (mmpretrain::_base_/models/...).
BASELINES = {
    'mobilenet_v2_1.0': 'mobilenet_v2_1x.py',
    'mobilenet_v3_large': 'mobilenet_v3/mobilenet_v3_large_imagenet.py',
    'mobilenet_v3_small': 'mobilenet_v3/mobilenet_v3_small_imagenet.py',
    'shufflenet_v2_1.0': 'shufflenet_v2_1x.py',
    'efficientnet_b0': 'efficientnet_b0.py',
    'mobilevit_s': 'mobilevit/mobilevit_s.py',
    'mobilevit_xs': 'mobilevit/mobilevit_xs.py',
    'mobilevit_xxs': 'mobilevit/mobilevit_xxs.py',
}
ARCHS = ('s0', 's1', 's2', 's3', 's4')
QUICK_MODELS = ('mobileone_s0', 'mobileone_s0_fused', 'mobilenet_v2_1.0')


def mobileone_classifier(arch: str, fused: bool) -> nn.Module:
    """Our backbone + the linear head of Apple's classifier, in eval mode.
    The train-time network runs per branch (``branch_impl='reference'``),
    as the paper and ml-mobileone measure it; the default 'fast' eval form
    would compute the fused kernel on the fly (docs/en/advanced_guides/fast_branches.md)."""
    model = LinearClassifier(MobileOne(arch=arch, out_indices=(3, ),
                                       branch_impl='reference'))
    return (reparameterize(model) if fused else model).eval()


def _baseline_configs() -> str:
    """The folder of the installed mmpretrain's model configs."""
    import mmpretrain
    return os.path.join(os.path.dirname(mmpretrain.__file__), '.mim',
                        'configs', '_base_', 'models')


def mmpretrain_classifier(name: str) -> nn.Module:
    """The baseline ``name`` (a key of :data:`BASELINES`), built from the
    installed mmpretrain's config, randomly initialised, in eval mode."""
    path = os.path.join(_baseline_configs(), BASELINES[name])
    init_default_scope('mmpretrain')
    return MODELS.build(Config.fromfile(path).model).eval()


def available_models() -> List[str]:
    """MobileOne S0-S4 (train-time, fused) and the baselines whose configs
    the installed mmpretrain has."""
    root = _baseline_configs()
    names = []
    for arch in ARCHS:
        names += [f'mobileone_{arch}', f'mobileone_{arch}_fused']
    return names + [n for n, p in BASELINES.items()
                    if os.path.isfile(os.path.join(root, p))]


def build(name: str) -> nn.Module:
    """The model ``name`` (see :func:`available_models`); ``KeyError`` for
    an unknown one."""
    if name.startswith('mobileone_'):
        arch = name.split('_')[1]
        if arch in ARCHS:
            return mobileone_classifier(arch, fused=name.endswith('_fused'))
    if name in BASELINES:
        return mmpretrain_classifier(name)
    raise KeyError(name)


def top1(name: str) -> Optional[float]:
    """The paper's top-1 of ``name`` (a fused model: that of its train-time
    form), ``None`` for a model the paper does not list.

    Example:
        >>> top1('mobileone_s0_fused'), top1('net30_relu')
        (71.4, None)
    """
    return PAPER_TOP1.get(name.replace('_fused', ''))
