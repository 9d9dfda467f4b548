from mmengine.registry import MODELS as MMENGINE_MODELS

from .backbones import MobileOne, MobileOneBlock
from .classifiers import LinearClassifier

# A plain type='MobileOne' must build ours from mmengine's root registry and from
# mmdet's/mmseg's (they fall back to their parent); mmpretrain keeps its own.
if MMENGINE_MODELS.get('MobileOne') is None:
    MMENGINE_MODELS.register_module(name='MobileOne', module=MobileOne)

__all__ = ['LinearClassifier', 'MobileOne', 'MobileOneBlock']

try:  # task modules need their OpenMMLab package (optional extras)
    import mmdet  # noqa: F401
except ImportError:
    pass
else:
    from .dense_heads import SSDLiteHead  # noqa: F401
    __all__ += ['SSDLiteHead']
