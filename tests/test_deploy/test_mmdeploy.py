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


def test_ssdlite_onnxruntime_matches_pytorch(det):
    out = det.predict()
    ort, ref = out['backend'].pred_instances, out['torch'].pred_instances
    assert len(ref.scores) >= 50  # a real comparison, not two empty lists
    assert len(ort.scores) == len(ref.scores)
    torch.testing.assert_close(ort.scores, ref.scores, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ort.bboxes, ref.bboxes, rtol=1e-4, atol=1e-2)
    assert torch.equal(ort.labels, ref.labels)
    # the NMS is ONNX's own op: plain onnxruntime runs the file (no custom ops)
    from mobileone_mm.deploy.onnx import onnx_run, onnx_session
    import numpy as np
    dets, labels = onnx_run(onnx_session(det.onnx[0]),
                            np.random.rand(1, 3, 320, 320).astype(np.float32))
    assert dets.shape[-1] == 5 and labels.shape == dets.shape[:2]


def test_deeplabv3_onnxruntime_matches_pytorch(seg):
    # The graph ends in argmax at the input size (with_argmax=True) and
    # mmdeploy resizes that class map to the image; mmseg resizes the logits
    # first. An image at the input size makes both resizes identities, so the
    # two class maps must agree pixel for pixel.
    from PIL import Image
    img = str(seg.root / 'hopper_512.png')
    Image.open(mmdeploy_compat.default_image()).convert('RGB').resize(
        (512, 512)).save(img)
    out = seg.predict(img)
    ort = out['backend'].pred_sem_seg.data
    ref = out['torch'].pred_sem_seg.data
    assert ort.shape == ref.shape == (1, 512, 512)
    assert ref.unique().numel() > 3  # a varied map, not one class
    assert torch.equal(ort, ref)


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
