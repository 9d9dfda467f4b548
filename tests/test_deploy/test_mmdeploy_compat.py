"""mmdeploy 1.3.1 with our deploy configs (configs/deploy/): ONNX Runtime
results against PyTorch, a fused backbone in the exported graph, the Core ML
route that works (segmentation) and the one that does not (detection)."""
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from mobileone_mm.apis import build_model, load_config
from mobileone_mm.utils.errors import UserError
from mobileone_mm.deploy import reparameterize

from ..utils import randomize_bn

from mobileone_mm.deploy import mmdeploy_compat

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / 'configs' / 'deploy'
MODELS = dict(
    det=(ROOT / 'configs/detection/ssdlite_mobileone_s0.py',
         DEPLOY / 'ssdlite_onnxruntime_static-320x320.py',
         DEPLOY / 'ssdlite_coreml_static-320x320.py'),
    seg=(ROOT / 'configs/segmentation/deeplabv3_mobileone_s0_voc.py',
         DEPLOY / 'deeplabv3_onnxruntime_static-512x512.py',
         DEPLOY / 'deeplabv3_coreml_static-512x512.py'))


def conv2d_count(model: nn.Module) -> int:
    """Convs that inference runs (a segmentor's auxiliary head is training-only)."""
    return sum(isinstance(m, nn.Conv2d) for name, m in model.named_modules()
               if not name.startswith('auxiliary_head'))


class Converted:
    """A random-weight checkpoint of a project config (BN statistics of the
    backbone randomized, so an unfused or wrongly fused export differs)."""

    def __init__(self, task: str, root: Path) -> None:
        config, self.onnx_cfg, self.coreml_cfg = map(str, MODELS[task])
        cfg = load_config(config)
        cfg.model.backbone.init_cfg = None  # no ImageNet checkpoint here
        torch.manual_seed(0)
        model = build_model(cfg)
        randomize_bn(model.backbone)
        self.unfused_convs = conv2d_count(model)
        self.fused_convs = conv2d_count(reparameterize(model))
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.model_cfg = str(root / 'model.py')
        self.checkpoint = str(root / 'random.pth')
        cfg.dump(self.model_cfg)
        torch.save({'state_dict': model.state_dict()}, self.checkpoint)
        self.onnx = mmdeploy_compat.convert(self.onnx_cfg, self.model_cfg,
                                            self.checkpoint, str(root / 'onnx'))

    def predict(self, img=None):
        return mmdeploy_compat.predict_both(self.onnx_cfg, self.model_cfg,
                                            self.checkpoint, self.onnx, img)


@pytest.fixture(scope='module')
def det(tmp_path_factory):
    return Converted('det', tmp_path_factory.mktemp('mmdeploy_det'))


@pytest.fixture(scope='module')
def seg(tmp_path_factory):
    return Converted('seg', tmp_path_factory.mktemp('mmdeploy_seg'))


def onnx_ops(path) -> Counter:
    import onnx
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_mmdeploy_exports_the_fused_backbone(task, request):
    # mmdeploy calls model.backbone.switch_to_deploy(): the graph has exactly
    # the convs of the fused model (torch's exporter folds eval-mode BN).
    converted = request.getfixturevalue(task)
    assert converted.fused_convs < converted.unfused_convs
    assert onnx_ops(converted.onnx[0])['Conv'] == converted.fused_convs


SCORE_TOL, BOX_TOL = 1e-4, 1e-2  # measured: 2.5e-6 and 3e-4 px apart


def predict_as_shipped(converted):
    """ONNX Runtime's and PyTorch's detections on one preprocessed image,
    both with the configs as shipped (as ``predict_both``), the PyTorch
    head's ``test_cfg`` and the softmax
    foreground scores of every level, (boxes, classes)."""
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import get_input_shape
    from mmdeploy.utils import load_config as load_deploy_config
    deploy_cfg, model_cfg = load_deploy_config(converted.onnx_cfg,
                                               converted.model_cfg)
    processor = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    backend = processor.build_backend_model(list(converted.onnx))
    model = processor.build_pytorch_model(converted.checkpoint)
    data, _ = processor.create_input(mmdeploy_compat.default_image(),
                                     get_input_shape(deploy_cfg))
    with torch.no_grad():
        ort = backend.test_step(data)[0].pred_instances
        ref = model.test_step(data)[0].pred_instances
        inputs = model.data_preprocessor(data, False)['inputs']
        cls_scores, _ = model.bbox_head(model.extract_feat(inputs))
    channels = model.bbox_head.cls_out_channels  # classes + background
    levels = [s.permute(0, 2, 3, 1).reshape(-1, channels).softmax(-1)[:, :-1]
              for s in cls_scores]
    return ort, ref, model.bbox_head.test_cfg, levels


def candidate_cuts(levels, nms_pre: int, score_thr: float):
    """Scores above which each pipeline sends every (box, class) pair of
    every level to NMS.

    mmdet (``_predict_by_feat_single``) keeps a level's ``nms_pre`` best
    pairs above ``score_thr``. mmdeploy 1.3.1's rewrite of
    ``predict_by_feat`` keeps a level's ``nms_pre`` best *boxes* with all
    their class scores, ranked by ``softmax(-1)[..., :-1][..., :-1].max(-1)``:
    the background column sliced off twice, so the last class does not
    count in the ranking. Returns (mmdet's cut, the graph's cut for the
    other classes, the graph's cut for the last class); ``0.`` where a level
    keeps everything."""
    mmdet = other = last = 0.
    for scores in levels:
        pairs = scores[scores > score_thr]
        if pairs.numel() > nms_pre:
            mmdet = max(mmdet, pairs.topk(nms_pre).values[-1].item())
        if len(scores) > nms_pre:
            rank = scores[:, :-1].amax(1)
            # boxes tied with the last one kept may be in or out
            out = scores[rank <= rank.topk(nms_pre).values[-1]]
            other = max(other, out[:, :-1].max().item())
            last = max(last, out[:, -1].max().item())
    return mmdet, other, last


def matched(a, b):
    """Which detections of ``a`` have one in ``b`` with the same label,
    score and box (up to SCORE_TOL, BOX_TOL): sets, not ranks, as
    detections a rounding apart may come out of NMS in either order."""
    same = ((a.labels[:, None] == b.labels[None]) &
            ((a.scores[:, None] - b.scores[None]).abs() <= SCORE_TOL) &
            ((a.bboxes[:, None] - b.bboxes[None]).abs().amax(-1) <= BOX_TOL))
    return same.any(1)


def test_ssdlite_onnxruntime_matches_pytorch(det):
    """The shipped configs (nms_pre 1000 per level) give PyTorch's
    detections exactly.

    The pipelines cut levels to nms_pre candidates differently (see
    ``candidate_cuts``; mmdet cuts the 20x20 and 10x10 levels here, the
    graph the 20x20 level, 2400 anchors), but above both cuts they hold the
    same candidates, and greedy NMS decides a detection by the candidates
    that score above it: the detections above both cuts are the same. Here
    the max_per_img cap (200) lies above both cuts, so all are; a model
    whose detections reach below them fails the assertion on
    ``cuts`` (see the last-class test for what then differs)."""
    ort, ref, test_cfg, levels = predict_as_shipped(det)
    shipped = load_config(str(MODELS['det'][0])).model.test_cfg
    assert test_cfg.nms_pre == shipped.nms_pre == 1000
    assert len(levels[0]) > test_cfg.nms_pre  # the cut is made
    cuts = candidate_cuts(levels, test_cfg.nms_pre, test_cfg.score_thr)
    assert len(ref.scores) == test_cfg.max_per_img
    assert ref.scores.min() > max(cuts) + SCORE_TOL, cuts
    assert len(ort.scores) == len(ref.scores)
    torch.testing.assert_close(ort.scores, ref.scores, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ort.bboxes, ref.bboxes, rtol=1e-4, atol=1e-2)
    assert torch.equal(ort.labels, ref.labels)
    # the NMS is ONNX's own op: plain onnxruntime runs the file (no custom ops)
    from mobileone_mm.deploy.backends.onnxruntime import onnx_run, onnx_session
    import numpy as np
    dets, labels = onnx_run(onnx_session(det.onnx[0]),
                            np.random.rand(1, 3, 320, 320).astype(np.float32))
    assert dets.shape[-1] == 5 and labels.shape == dets.shape[:2]


@pytest.fixture(scope='module')
def det_last_class(det, tmp_path_factory):
    """``det`` with the last class's logit raised by 3 at every anchor, so
    that the last class wins many boxes (as a trained detector's does where
    that object is in the picture), exported with the shipped configs."""
    from types import SimpleNamespace
    root = tmp_path_factory.mktemp('mmdeploy_det_last_class')
    state = torch.load(det.checkpoint, map_location='cpu', weights_only=True)
    channels = load_config(det.model_cfg).model.bbox_head.num_classes + 1
    for key, value in state['state_dict'].items():
        if key.startswith('bbox_head.cls_convs.') and key.endswith('.1.bias'):
            value.view(-1, channels)[:, -2] += 3.  # background is the last
    checkpoint = str(root / 'last_class.pth')
    torch.save(state, checkpoint)
    onnx = mmdeploy_compat.convert(det.onnx_cfg, det.model_cfg, checkpoint,
                                   str(root / 'onnx'))
    return SimpleNamespace(onnx_cfg=det.onnx_cfg, model_cfg=det.model_cfg,
                           checkpoint=checkpoint, onnx=onnx)


def test_ssdlite_onnxruntime_loses_last_class_boxes(det_last_class):
    """Where exact equality fails with the shipped configs, and why.

    mmdeploy 1.3.1 ranks a level's boxes for its nms_pre cut without the
    last class (COCO's toothbrush; see ``candidate_cuts``): on the 20x20
    level a box that scores high only for the last class may never reach
    NMS, and the last class's detections that PyTorch has above mmdet's own
    cut can be missing. The other classes keep every pair above mmdet's cut,
    so the tolerance is: every detection of another class scoring above
    mmdet's cut and above the lower end of either list (the 200-detection
    cap shifts when the last class loses some) is in both lists, as sets
    with score and box tolerances; of the last class, every detection above
    the graph's cut for it."""
    ort, ref, test_cfg, levels = predict_as_shipped(det_last_class)
    mmdet_cut, other_cut, last_cut = candidate_cuts(
        levels, test_cfg.nms_pre, test_cfg.score_thr)
    assert other_cut <= mmdet_cut < last_cut  # only the last class is cut short
    last = levels[0].shape[1] - 1  # the last foreground class
    floor = max(mmdet_cut, ort.scores.min(), ref.scores.min()) + SCORE_TOL
    for a, b in ((ref, ort), (ort, ref)):
        other = (a.labels != last) & (a.scores > floor)
        assert matched(a, b)[other].all()
        top_last = (a.labels == last) & (a.scores > max(floor, last_cut + SCORE_TOL))
        assert matched(a, b)[top_last].all()
    assert ((ref.labels != last) & (ref.scores > floor)).sum() >= 80  # 91 measured
    lost = (ref.labels == last) & (ref.scores > floor) & ~matched(ref, ort)
    assert lost.sum() >= 10  # 28 measured: the difference is real


def test_deeplabv3_onnxruntime_matches_pytorch(seg):
    # The graph ends in argmax at the input size (with_argmax=True) and
    # mmdeploy resizes that class map to the image; mmseg resizes the logits
    # first. An image at the input size makes both resizes identities, so the
    # two class maps must agree pixel for pixel.
    from PIL import Image
    img = str(seg.root / 'hopper_512.png')
    Image.open(mmdeploy_compat.default_image()).convert('RGB').resize(
        (512, 512)).save(img)
    # Where PyTorch's two best classes are closer than the backends' float
    # rounding (1e-4 of the largest logit; the logits agree to ~1e-6), the
    # argmax of a random-weight model is a coin toss that the thread count
    # of the process can flip: those pixels may differ, no other may.
    out = seg.predict(img)
    ort = out['backend'].pred_sem_seg.data
    ref = out['torch'].pred_sem_seg.data
    assert ort.shape == ref.shape == (1, 512, 512)
    assert ref.unique().numel() > 3  # a varied map, not one class
    logits = out['torch'].seg_logits.data
    top2 = logits.topk(2, dim=0).values
    clear = (top2[0] - top2[1]) > 1e-4 * logits.abs().max()
    assert clear.float().mean() > 0.99
    assert torch.equal(ort[0][clear], ref[0][clear])


def test_deeplabv3_coreml_export_is_a_fused_program(seg):
    files = mmdeploy_compat.convert(seg.coreml_cfg, seg.model_cfg, seg.checkpoint,
                                    str(seg.root / 'coreml'))
    assert files[0].endswith('.mlpackage') and Path(files[0]).is_dir()
    import coremltools as ct
    spec = ct.models.MLModel(files[0], skip_model_load=True).get_spec()
    blocks = spec.mlProgram.functions['main'].block_specializations.values()
    ops = Counter(op.type for block in blocks for op in block.operations)
    assert ops['conv'] == seg.fused_convs


def test_ssdlite_coreml_needs_mmdeploy_torchscript_ops(det):
    # mmdeploy's Core ML NMS rewrite (multiclass_nms__coreml) asserts
    # ops_available(): the TorchScript op library the PyPI wheel lacks. (Tried
    # by hand: torch2torchscript fails with "coreml require custom torchscript
    # ops support."; not repeated here, it costs a trace of the detector.)
    from mmdeploy.backend.torchscript import ops_available
    assert not ops_available()
    with pytest.raises(UserError, match='--full-model --backends coreml'):
        mmdeploy_compat.convert(det.coreml_cfg, det.model_cfg, det.checkpoint,
                                str(det.root / 'coreml'))


def test_missing_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match='config not found'):
        mmdeploy_compat.convert(str(tmp_path / 'nope.py'), str(MODELS['det'][0]),
                                None, str(tmp_path))
    with pytest.raises(UserError, match='checkpoint not found'):
        mmdeploy_compat.convert(*map(str, MODELS['det'][1::-1]),
                                str(tmp_path / 'missing.pth'), str(tmp_path))


def test_dynamo_exporter_default_is_turned_off_only_around_export(monkeypatch):
    calls = []

    def export(model, args, f, *, dynamo: bool = True, **kwargs):  # torch >= 2.9
        calls.append(dynamo)

    monkeypatch.setattr(torch.onnx, 'export', export)
    assert mmdeploy_compat.dynamo_is_default()
    with mmdeploy_compat.torchscript_onnx_exporter():
        torch.onnx.export(None, (), 'x.onnx')
        torch.onnx.export(None, (), 'x.onnx', dynamo=True)  # explicit wins
    assert torch.onnx.export is export  # restored
    assert calls == [False, True]


def test_installed_torch_is_patched_only_if_it_defaults_to_dynamo():
    # torch 2.7.1 (the tested pin) defaults to dynamo=False: nothing patched
    original = torch.onnx.export
    with mmdeploy_compat.torchscript_onnx_exporter():
        patched = torch.onnx.export is not original
    assert patched == mmdeploy_compat.dynamo_is_default()
    assert torch.onnx.export is original
