"""The complete model's checks against mmdet and mmseg, and deploy(...,
full_model=True) end to end (mobileone_mm/deploy/full_model.py)."""
import json
import platform

import pytest
import torch
from mmengine.structures import InstanceData

from mobileone_mm.deploy import full_model
from mobileone_mm.deploy.export import DeployCheckFailed, deploy
from mobileone_mm.deploy.full_model import (check_detector, check_image,
                                            check_segmentor,
                                            compare_detections)
from mobileone_mm.deploy.postprocess import build_graph
from mobileone_mm.deploy.report import _complete_failures

from .test_postprocess import (HW, fused_model, tiny_detector_cfg,
                               tiny_segmentor_cfg)


@pytest.fixture(scope='module')
def det():
    cfg = tiny_detector_cfg()
    model = fused_model(cfg, spread_head=True)
    return cfg, model, build_graph(model, cfg, HW)


def test_detector_decoding_equals_mmdets(det):
    cfg, model, graph = det
    checks = check_detector(model, graph, cfg, check_image(HW))
    assert all(c['ok'] for c in checks.values()), checks
    # every (anchor, class) pair before NMS; real suppression after it
    assert checks['pre_nms']['detections'] == sum(graph.level_sizes) * 3
    post = checks['post_nms']['detections']
    assert 0 < post < checks['pre_nms']['detections']


@pytest.mark.parametrize('broken', ['stds', 'channels'])
def test_a_wrong_decoding_is_caught(det, broken):
    """A wrong coder constant or channel order makes the checks fail."""
    cfg, model, _ = det
    graph = build_graph(model, cfg, HW)
    if broken == 'stds':
        graph.stds.mul_(1.5)
    else:
        graph.normalize.mean.copy_(graph.normalize.mean.flip(1))
        graph.normalize.std.copy_(graph.normalize.std.flip(1))
    checks = check_detector(model, graph, cfg, check_image(HW))
    assert not checks['pre_nms']['ok'] and not checks['post_nms']['ok']


def test_detections_pair_regardless_of_order():
    boxes = torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 30.]])
    ref = InstanceData(bboxes=boxes, scores=torch.tensor([.5, .5]),
                       labels=torch.tensor([0, 1]))
    swapped = ref[torch.tensor([1, 0])]
    assert not compare_detections(swapped, ref)['ok']
    assert compare_detections(swapped, ref, ordered=False)['ok']
    relabelled = InstanceData(bboxes=boxes, scores=ref.scores,
                              labels=torch.tensor([1, 1]))
    assert not compare_detections(relabelled, ref, ordered=False)['ok']


def test_segmentor_class_map_equals_mmsegs():
    cfg = tiny_segmentor_cfg()
    model = fused_model(cfg)
    graph = build_graph(model, cfg, HW)
    check = check_segmentor(model, graph, cfg, check_image(HW))
    assert check['ok'] and check['differing_pixels'] == 0
    assert check['classes_present'] > 1
    graph.align_corners = True  # not what mmseg does for this config
    assert check_segmentor(model, graph, cfg, check_image(HW))[
        'differing_pixels'] > 0


def test_deploy_complete_detector(tmp_path):
    report = deploy(tiny_detector_cfg(), None, str(tmp_path), runs=1,
                    input_size=HW, full_model=True, verbose=False)
    assert report['checks_passed'], report['failures']
    full = json.loads((tmp_path / 'report.json').read_text())['full_model']
    assert full['task'] == 'detection'
    assert full['classes'] == ['square', 'circle', 'triangle']
    assert full['input']['channel_order'] == 'RGB'
    assert full['reference']['pytorch']['pre_nms']['ok']
    assert full['reference']['onnxruntime']['post_nms']['ok']
    coreml = full['coreml']
    assert coreml['ok'] and coreml['kind'] == 'pipeline'
    assert (tmp_path / 'model.mlpackage').is_dir()
    assert (tmp_path / 'model.onnx').is_file()
    # PyTorch's two checks, ONNX Runtime's and ncnn's, the package read back
    assert len(full['verified']) == 5 and full['differences']
    assert any('NonMaximumSuppression' in v for v in full['verified'])
    # ncnn: NMS inside the graph (DetectionOutput), detections equal mmdet's
    ncnn = full['ncnn']
    assert full['reference']['ncnn']['post_nms']['ok'], full['reference']
    assert full['reference']['ncnn']['post_nms']['detections'] > 0
    assert ncnn['ops']['DetectionOutput'] == 1
    assert ncnn['nms']['num_class'] == 4  # background + 3 classes
    assert (tmp_path / 'model.ncnn.param').is_file()
    app = json.loads((tmp_path / 'model.ncnn.json').read_text())
    assert app['input']['channel_order'] == 'RGB'
    assert app['classes'] == ['square', 'circle', 'triangle']
    assert ncnn['postprocess_share'] == pytest.approx(
        ncnn['latency_ms']['min'] / ncnn['network_latency_ms']['min'] - 1)
    assert set(ncnn['postprocess_share_by_threads']) == {'1', '2'}
    assert set(full['torch']['latency_ms_by_threads']) == {'1', '2'}
    assert any('ncnn' in d for d in full['differences'])
    if platform.system() != 'Darwin':
        assert coreml['macos_check'] is None and coreml['latency_ms'] is None
        assert 'macOS' in full['not_verified'][0]


def test_deploy_fails_when_decoding_differs(tmp_path, monkeypatch):
    """A decoding that drifts from mmdet's fails the deploy, report
    written."""
    original = full_model.build_graph

    def drifted(model, cfg, hw):
        graph = original(model, cfg, hw)
        graph.means.add_(0.05)
        return graph

    monkeypatch.setattr(full_model, 'build_graph', drifted)
    with pytest.raises(DeployCheckFailed, match='pre_nms differs from mmdet'):
        deploy(tiny_detector_cfg(), None, str(tmp_path), runs=1,
               input_size=HW, full_model=True, backends=['onnxruntime'],
               verbose=False)
    report = json.loads((tmp_path / 'report.json').read_text())
    assert not report['checks_passed']
    assert report['full_model']['coreml'] is None


def test_deploy_complete_segmentor(tmp_path):
    report = deploy(tiny_segmentor_cfg(), None, str(tmp_path), runs=1,
                    input_size=HW, full_model=True, precision='fp16',
                    verbose=False)
    assert report['checks_passed'], report['failures']
    full = report['full_model']
    assert full['task'] == 'segmentation'
    assert full['reference']['onnxruntime']['ok']
    ncnn = full['reference']['ncnn']
    assert ncnn['ok'] and ncnn['differing_outside_ties'] == 0, ncnn
    assert full['ncnn']['ops'].get('Reduction', 0) == 2  # max, then min
    assert full['coreml']['ok'] and full['coreml']['kind'] == 'mlProgram'
    assert full['coreml']['outputs'][0]['dtype'] == 'INT32'
    assert full['coreml']['ops']['cast'] >= 1  # an fp16 program


def test_complete_model_failures_are_named():
    """The report names each failed check of the complete model."""
    ok = dict(detections=3, reference_detections=3, ok=True)
    full = dict(task='detection',
                reference=dict(pytorch=dict(pre_nms=ok, post_nms=ok),
                               onnxruntime=dict(post_nms=dict(ok, ok=False))),
                coreml=dict(problems=['nms: 0.6 != expected 0.45'],
                            macos_check=dict(detections=2, ok=False)))
    lines = _complete_failures(full)
    assert len(lines) == 3
    assert lines[0].startswith('complete model in onnxruntime: post_nms')
    assert 'read back: nms: 0.6' in lines[1] and 'on macOS' in lines[2]
    seg = dict(task='segmentation', reference=dict(pytorch=dict(
        pixels=4, differing_pixels=1, ok=False)))
    assert 'class map differs from mmseg' in _complete_failures(seg)[0]
    full['coreml'] = dict(problems=[], macos_check=None)
    full['reference']['onnxruntime']['post_nms']['ok'] = True
    assert _complete_failures(full) == []
