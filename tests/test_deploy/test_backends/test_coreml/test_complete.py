"""The complete Core ML detector and segmentor: export, read back, checks
(mobileone_mm/deploy/coreml_full.py). Core ML cannot predict off macOS: the
saved package itself is checked here."""
import platform

import numpy as np
import pytest
import torch

from mobileone_mm.deploy.backends.coreml import complete as coreml_full
from mobileone_mm.deploy.backends.coreml.complete import (check_package, check_weights,
                                             coreml_compare_full,
                                             coreml_latency_full,
                                             export_complete, inspect_package,
                                             package_conv_weights)
from mobileone_mm.deploy.full_model import check_image
from mobileone_mm.deploy.postprocess import build_graph

from ...test_postprocess import (HW, fused_model, tiny_detector_cfg,
                               tiny_segmentor_cfg)

LABELS = ['square', 'circle', 'triangle']


@pytest.fixture(scope='module')
def det_fp16(tmp_path_factory):
    cfg = tiny_detector_cfg()
    graph = build_graph(fused_model(cfg), cfg, HW)
    path = str(tmp_path_factory.mktemp('det') / 'model.mlpackage')
    export_complete(graph, check_image(HW), path, LABELS, 'fp16', 'iOS16')
    return graph, path


def test_detector_package_reads_back(det_fp16):
    graph, path = det_fp16
    check = check_package(path, graph, check_image(HW), LABELS, 'fp16')
    assert check['ok'], check['problems']
    assert check['kind'] == 'pipeline'
    assert check['inputs'][0] == dict(name='image', type='image',
                                      optional=False, color='RGB',
                                      width=64, height=64)
    assert [o['name'] for o in check['outputs']] == ['confidence',
                                                     'coordinates']
    assert check['outputs'][0]['shape'] == [[0, 200], [3, 3]]
    assert check['nms'] == dict(iou_threshold=0.45, confidence_threshold=0.02,
                                per_class=True, max_detections=200,
                                class_labels=LABELS)
    assert check['metadata']['classes'] == LABELS
    # the fp16 program holds the weights rounded to float16
    weights = package_conv_weights(path)
    assert {w.dtype for w in weights} == {np.dtype(np.float16)}
    assert 0 < check['conv_weights']['max_rel_diff'] <= 1e-3
    assert check['conv_weights']['convs'] == check['ops']['conv'] == 45


def test_a_changed_package_is_caught(det_fp16, tmp_path):
    """A package whose NMS threshold or labels differ from the config's,
    or a graph whose conv weights differ from the program's, fails."""
    import coremltools as ct
    graph, path = det_fp16
    mlmodel = ct.models.MLModel(path, skip_model_load=True)
    spec = mlmodel.get_spec()
    nms = spec.pipeline.models[1].nonMaximumSuppression
    nms.iouThreshold = 0.6
    nms.stringClassLabels.vector[0] = 'cube'
    changed = str(tmp_path / 'changed.mlpackage')
    ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir,
                      skip_model_load=True).save(changed)
    check = check_package(changed, graph, check_image(HW), LABELS, 'fp16')
    assert not check['ok'] and len(check['problems']) == 1
    assert "'iou_threshold': 0.6" in check['problems'][0]
    assert "'cube'" in check['problems'][0]

    conv = next(m for m in graph.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        conv.weight[0].mul_(1.01)
    try:
        assert not check_weights(path, graph, check_image(HW), 'fp16')['ok']
    finally:
        with torch.no_grad():
            conv.weight[0].div_(1.01)


def test_segmentor_package_reads_back(tmp_path):
    cfg = tiny_segmentor_cfg()
    graph = build_graph(fused_model(cfg), cfg, HW)
    labels = ['background'] + LABELS
    path = export_complete(graph, check_image(HW),
                           str(tmp_path / 'seg.mlpackage'), labels)
    check = check_package(path, graph, check_image(HW), labels, 'fp32')
    assert check['ok'], check['problems']
    assert check['kind'] == 'mlProgram' and check['nms'] is None
    assert check['outputs'] == [dict(name='semanticPredictions',
                                     type='multiArray', optional=False,
                                     dtype='INT32', shape=[64, 64])]
    assert check['ops']['reduce_argmax'] == 1
    assert check['conv_weights']['max_rel_diff'] <= 1e-5
    assert inspect_package(path)['metadata']['classes'] == labels


@pytest.mark.skipif(platform.system() == 'Darwin',
                    reason='Core ML predicts on macOS')
def test_predictions_need_macos(det_fp16):
    graph, path = det_fp16
    assert coreml_compare_full(path, graph, check_image(HW)) is None
    latency, note = coreml_latency_full(path, graph, check_image(HW), 2)
    assert latency is None and 'only on macOS' in note


@pytest.mark.skipif(platform.system() != 'Darwin', reason='needs macOS')
def test_coreml_boxes_equal_pytorchs_on_macos(det_fp16):
    graph, path = det_fp16
    check = coreml_compare_full(path, graph, check_image(HW), 'fp16')
    assert check['ok'], check
    latency, _ = coreml_latency_full(path, graph, check_image(HW), 2)
    assert latency['runs'] == 2


def test_nms_settings_come_from_test_cfg(det_fp16):
    graph, _ = det_fp16
    graph.detector.bbox_head.test_cfg['max_per_img'] = 7
    try:
        assert coreml_full.nms_settings(graph)['max_detections'] == 7
    finally:
        graph.detector.bbox_head.test_cfg['max_per_img'] = 200
