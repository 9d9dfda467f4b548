"""SSDLiteHead: mmdet 3.3.0's SSDHead cannot predict; ours can."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mobileone_mm.apis import build_model

from tests.conftest import ROOT

DET = ROOT / 'configs' / 'detection'


def test_mmdet_ssd_head_is_broken_and_ours_predicts():
    from mmdet.registry import MODELS
    cfg = Config.fromfile(str(DET / 'ssdlite_mobileone_s0.py'))
    init_default_scope(cfg.default_scope)  # mmdet's SSDHead, whatever ran before
    head_cfg = dict(cfg.model.bbox_head, type='SSDHead', test_cfg=cfg.model.test_cfg)
    torch.manual_seed(0)
    feats = [torch.rand(1, c, s, s) for c, s in
             zip(cfg.model.bbox_head.in_channels, (20, 10, 5, 3, 2, 1))]
    meta = [dict(img_shape=(320, 320), scale_factor=(1., 1.))]
    broken = MODELS.build(head_cfg).eval()
    with pytest.raises(AttributeError, match='loss_cls'):
        broken.predict_by_feat(*broken(feats), batch_img_metas=meta,
                               rescale=False)
    ours = build_model(cfg).bbox_head.eval()
    ours.load_state_dict(broken.state_dict())
    # untrained: all 81 softmax scores are ~1/81, below the default 0.02
    test_cfg = cfg.model.test_cfg.copy()
    test_cfg.score_thr = 0.0
    results = ours.predict_by_feat(*ours(feats), batch_img_metas=meta,
                                   cfg=test_cfg, rescale=False)
    # score_thr 0: far more than max_per_img boxes survive NMS, so the
    # top-k cut gives exactly max_per_img
    assert len(results[0].bboxes) == test_cfg.max_per_img > 0
    assert results[0].scores.max() <= 1
    assert results[0].scores.max() < cfg.model.test_cfg.score_thr
