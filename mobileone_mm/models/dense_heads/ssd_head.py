"""mmdet's SSDHead, made able to predict with mmdet 3.3.0."""
from mmdet.models.dense_heads import SSDHead

from mobileone_mm.registry import MODELS


@MODELS.register_module()
class SSDLiteHead(SSDHead):
    """``mmdet.models.SSDHead`` with the attribute its prediction needs.

    mmdet 3.3.0's ``BaseDenseHead._predict_by_feat_single`` reads
    ``self.loss_cls`` (to ask for custom class channels), but ``SSDHead``
    computes its softmax cross-entropy inline and never sets one, so
    ``predict``/validation raise ``AttributeError``. SSD has no custom class
    channels: ``loss_cls = None`` makes the check fall through to SSD's
    softmax scores (``use_sigmoid_cls`` is False). Everything else is
    mmdet's; use it as ``type='mobileone_mm.SSDLiteHead'``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loss_cls = None
