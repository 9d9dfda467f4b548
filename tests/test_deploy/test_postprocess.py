"""The complete detector and segmentor graphs (mobileone_mm/deploy/postprocess.py).

Also defines the tiny detector and segmentor configs the other complete-model
tests (test_full_model.py, test_coreml_full.py) use."""
import pytest
import torch
import torch.nn.functional as F

from mobileone_mm.apis import build_model, load_config
from mobileone_mm.deploy.model_setup import calibrate_bn
from mobileone_mm.deploy.postprocess import (Normalization, build_graph,
                                             class_names, coreml_style_nms)
from mobileone_mm.deploy.fusion import reparameterize
from mobileone_mm.utils.errors import UserError

from .conftest import CLS_S0, CONFIGS

DET_SHAPES = CONFIGS / 'detection' / 'ssdlite_mobileone_s0_shapes.py'
SEG_SHAPES = CONFIGS / 'segmentation' / 'deeplabv3_mobileone_s0_shapes.py'
TINY_ARCH = dict(num_blocks=(1, 1, 1, 1), widths=(8, 16, 16, 32),
                 num_conv_branches=(2, 2, 2, 2), num_se_blocks=(0, 0, 0, 0))
HW = (64, 64)


def tiny_detector_cfg():
    """The demo's SSDLite (3 classes) on a tiny MobileOne, 64 px."""
    cfg = load_config(str(DET_SHAPES))
    cfg.model.backbone.arch = TINY_ARCH
    levels = (16, 32, 16, 16, 8, 8)
    cfg.merge_from_dict({'model.neck.in_channels': levels[:2],
                         'model.neck.out_channels': levels,
                         'model.bbox_head.in_channels': levels})
    return cfg


def tiny_segmentor_cfg():
    """The demo's DeepLabV3 on a tiny MobileOne (BN instead of SyncBN)."""
    cfg = load_config(str(SEG_SHAPES))
    cfg.model.backbone.arch = TINY_ARCH
    bn = dict(type='BN', requires_grad=True)
    cfg.merge_from_dict({
        'model.backbone.norm_cfg': bn, 'model.decode_head.norm_cfg': bn,
        'model.auxiliary_head.norm_cfg': bn,
        'model.decode_head.in_channels': 32, 'model.decode_head.channels': 16,
        'model.auxiliary_head.in_channels': 16,
        'model.auxiliary_head.channels': 16})
    return cfg


def fused_model(cfg, spread_head=False):
    """The config's model, BN-calibrated and fused. ``spread_head``: head
    convs with large random weights, so that scores and boxes spread far
    from the near-uniform values of a freshly initialized head."""
    torch.manual_seed(0)
    model = calibrate_bn(build_model(cfg), (1, 3, *HW))
    if spread_head:
        for m in model.bbox_head.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.normal_(m.weight, std=0.3)
    return reparameterize(model)


@pytest.fixture(scope='module')
def det():
    cfg = tiny_detector_cfg()
    model = fused_model(cfg, spread_head=True)
    return cfg, model, build_graph(model, cfg, HW)


def test_decode_equals_mmdets_coder(det):
    """The out-of-place decoding equals mmdet's bbox_coder.decode exactly,
    including the clamps (wh ratio, image border)."""
    _, model, graph = det
    head = model.bbox_head
    sizes = [(4, 4), (2, 2), (1, 1), (1, 1), (1, 1), (1, 1)]
    priors = torch.cat(head.prior_generator.grid_priors(sizes, device='cpu'))
    deltas = torch.randn(len(priors), 4,
                         generator=torch.Generator().manual_seed(0)) * 3
    ref = head.bbox_coder.decode(priors, deltas, max_shape=HW)
    assert (ref == 0).any() and (ref == HW[0]).any()  # the clamps acted
    torch.testing.assert_close(graph.decode(deltas), ref, rtol=0, atol=0)
    assert graph.level_sizes == [len(p) for p in head.prior_generator
                                 .grid_priors(sizes, device='cpu')]


def test_detector_outputs(det):
    cfg, model, graph = det
    image = torch.randint(0, 256, (1, 3, *HW)).float()
    with torch.no_grad():
        confidence, coordinates = graph(image)
        # the head's own scores: softmax over classes + background (last)
        cls_scores, _ = model.bbox_head(model.extract_feat(
            graph.normalize(image)))
    anchors = sum(graph.level_sizes)
    assert confidence.shape == (anchors, 3) and coordinates.shape == (anchors, 4)
    first = cls_scores[0].permute(0, 2, 3, 1).reshape(-1, 4).softmax(-1)
    torch.testing.assert_close(confidence[:len(first)], first[:, :3])
    assert (confidence.sum(1) < 1).all()  # background dropped
    assert coordinates.min() >= 0 and coordinates.max() <= 1


def test_normalization_follows_the_config():
    cfg = tiny_detector_cfg()
    norm = Normalization.from_config(cfg)
    assert norm.channel_order == 'RGB' and norm.mean == (123.675, 116.28,
                                                         103.53)
    cfg.model.data_preprocessor.bgr_to_rgb = False
    assert Normalization.from_config(cfg).channel_order == 'BGR'
    graph = build_graph(fused_model(cfg), cfg, HW)
    x = torch.full((1, 3, *HW), 123.675)
    assert graph.normalize(x)[0, 0].abs().max() == 0


def test_segmentor_graph_is_mmsegs_argmax():
    cfg = tiny_segmentor_cfg()
    model = fused_model(cfg)
    graph = build_graph(model, cfg, HW)
    image = torch.randint(0, 256, (1, 3, *HW)).float()
    with torch.no_grad():
        class_map = graph(image)
        logits = model(graph.normalize(image), mode='tensor')
    expected = F.interpolate(logits, size=HW, mode='bilinear',
                             align_corners=False).argmax(1)[0]
    assert class_map.shape == HW and torch.equal(class_map, expected)
    assert class_names(cfg, graph.num_classes) == [
        'background', 'square', 'circle', 'triangle']


def test_classifier_has_no_complete_graph():
    cfg = load_config(str(CLS_S0))
    with pytest.raises(UserError, match='classifier'):
        build_graph(build_model(cfg), cfg, HW)


def test_coreml_style_nms():
    """One label per box (argmax), suppression within a label, confidence
    threshold on the best score, at most max_detections."""
    confidence = torch.tensor([[0.9, 0.1], [0.8, 0.1], [0.1, 0.7],
                               [0.01, 0.02], [0.3, 0.2]])
    # boxes 0-2 overlap fully; box 4 is apart; box 3 scores below 0.05
    coordinates = torch.tensor([[.5, .5, .2, .2]] * 4 + [[.1, .1, .1, .1]])
    nms = dict(iou_threshold=0.45, confidence_threshold=0.05,
               max_detections=10)
    conf, coords = coreml_style_nms(confidence, coordinates, nms)
    torch.testing.assert_close(conf, confidence[[0, 2, 4]])
    torch.testing.assert_close(coords, coordinates[[0, 2, 4]])
    conf, _ = coreml_style_nms(confidence, coordinates,
                               dict(nms, max_detections=2))
    torch.testing.assert_close(conf, confidence[[0, 2]])
