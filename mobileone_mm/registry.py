"""mobileone_mm's registries, children of mmengine's root registries.

The child registry gives the scope ``mobileone_mm``, so ``type='mobileone_mm.MobileOne'``
resolves to ours from any OpenMMLab registry (mmdet, mmseg, and mmpretrain, whose
own ``MobileOne`` is a different model). Our backbone is also registered in the root
``MODELS`` (see ``mobileone_mm.models``) so that a plain ``type='MobileOne'`` reaches
it from mmengine, mmdet and mmseg, which search their parent.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mobileone_mm',
    locations=['mobileone_mm.models'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mobileone_mm',
    locations=['mobileone_mm.engine'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope='mobileone_mm',
    locations=['mobileone_mm.engine'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, scope='mobileone_mm',
    locations=['mobileone_mm.datasets.transforms'])
