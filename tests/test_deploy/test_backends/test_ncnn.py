"""The ncnn backend (mobileone_mm/deploy/backends/ncnn.py): its .param
reading, the fp16 variant, the argmax written in ncnn's ops and the complete
detector's DetectionOutput settings."""
import pytest
import torch
import torch.nn as nn

from mobileone_mm.deploy.backends import ncnn as ncnn_backend
from mobileone_mm.deploy.backends.ncnn import (NcnnBackend,
                                               SegmentorNcnnGraph,
                                               output_names, param_ops)
from mobileone_mm.deploy.compare import compare_outputs, forward_tensors
from mobileone_mm.deploy.full_model import check_detections, check_image
from mobileone_mm.deploy.postprocess import build_graph

from ..test_postprocess import HW, fused_model, tiny_detector_cfg


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return [y, {'b': torch.relu(self.dw(y))}]


def test_export_writes_param_and_both_weights(tmp_path):
    x = torch.rand(1, 3, 16, 16)
    path = NcnnBackend().export(TwoHeads().eval(), x, str(tmp_path / 'm'))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'm.bin', 'm.fp16.bin', 'm.param']  # pnnx's own files are gone
    assert (tmp_path / 'm.fp16.bin').stat().st_size < \
        (tmp_path / 'm.bin').stat().st_size
    ops = param_ops(path)
    assert ops['Convolution'] == 1 and ops['ConvolutionDepthWise'] == 1
    assert output_names(path) == ['out0', 'out1']


def test_fp16_variant_is_reported_apart(tmp_path):
    """fp16 weights differ from PyTorch's fp32 by more than the fp32 run
    does, and still by little."""
    model = TwoHeads().eval()
    x = torch.rand(1, 3, 16, 16)
    backend = NcnnBackend()
    path = backend.export(model, x, str(tmp_path / 'm'))
    checks = backend.checks(path, model, x)
    fp32 = compare_outputs(backend.run(path, x),
                           forward_tensors(model, x))['max_abs_diff']
    assert fp32 < 1e-5
    assert fp32 < checks['fp16']['max_abs_diff'] < 1e-2
    assert checks['benchncnn'].endswith('param=m.param shape=[16,16,3]"')


class FixedLogits(nn.Module):
    """Stands in for a SegmentorGraph: ``logits`` returns given values."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.values = logits
        self.num_classes = logits.shape[1]

    def logits(self, image):
        return self.values


def test_argmax_in_ncnn_ops_equals_torchs():
    """Exact ties go to the lowest class (torch's argmax); values a float
    step apart are told apart."""
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 6, 7)
    logits[0, 3, 0, 0] = logits[0, 1, 0, 0] = 9.  # an exact tie
    logits[0, 4, 1, 1] = 9.
    logits[0, 2, 1, 1] = torch.nextafter(torch.tensor(9.),
                                         torch.tensor(10.))
    ours = SegmentorNcnnGraph(FixedLogits(logits))(None)[0]
    assert torch.equal(ours.long(), logits.argmax(dim=1)[0])
    assert ours[0, 0] == 1 and ours[1, 1] == 2


@pytest.fixture(scope='module')
def det():
    cfg = tiny_detector_cfg()
    model = fused_model(cfg, spread_head=True)
    return cfg, model, build_graph(model, cfg, HW)


def _detections(tmp_path, graph, image):
    path = ncnn_backend.export_complete(graph, image, str(tmp_path / 'det'))
    rows = NcnnBackend().run(path, image)[0][0]
    return ncnn_backend.detections(rows, graph.input_hw)


def test_detection_output_equals_mmdet(det, tmp_path):
    cfg, model, graph = det
    image = check_image(HW)
    check = check_detections(model, graph, cfg, image,
                             _detections(tmp_path, graph, image))
    assert check['ok'] and check['detections'] > 1, check


def test_a_wrong_nms_setting_is_caught(det, tmp_path, monkeypatch):
    """DetectionOutput with another IoU threshold than the config's: the
    check against mmdet fails."""
    cfg, model, graph = det
    original = ncnn_backend.nms_settings

    def loose(g):
        return dict(original(g), nms_threshold=0.95)

    monkeypatch.setattr(ncnn_backend, 'nms_settings', loose)
    image = check_image(HW)
    check = check_detections(model, graph, cfg, image,
                             _detections(tmp_path, graph, image))
    assert not check['ok']
    assert check['detections'] > check['reference_detections']
