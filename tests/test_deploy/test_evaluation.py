"""The config's test set through ONNX Runtime (mobileone_mm/deploy/
ort_eval.py): for fp32 the metric equals PyTorch's, with mmdet's decoding
and NMS and mmseg's post-processing on the session's outputs."""
import pytest
import torch
import torch.nn as nn

from mobileone_mm.deploy.backends.onnxruntime import export_onnx, onnx_session
from mobileone_mm.apis import load_config
from mobileone_mm.deploy.evaluation import (build_test_loader, evaluate,
                                          ort_predictor, primary_metric,
                                          task_of, torch_predictor, unflatten)
from mobileone_mm.utils.errors import UserError

from .test_quantization.quant_cases import DET_CFG, SEG_CFG, det_options, fused_model, \
    seg_options


def _setup(config, options, tmp_path):
    cfg, model, example = fused_model(config, options)
    path = str(tmp_path / 'model.onnx')
    export_onnx(model, example, path)
    return cfg, model, dict(pytorch=torch_predictor(model),
                            fp32=ort_predictor(onnx_session(path), model,
                                               example))


def test_detection_map_through_onnxruntime_equals_pytorch(shapes_root,
                                                          tmp_path):
    cfg, model, predictors = _setup(DET_CFG, det_options(shapes_root),
                                    tmp_path)
    metrics = evaluate(cfg, model, predictors)
    assert primary_metric(metrics['pytorch']) == 'coco/bbox_mAP'
    assert metrics['fp32'] == metrics['pytorch']
    # not vacuous: the random tiny detector hits some boxes at IoU 0.5
    assert metrics['pytorch']['coco/bbox_mAP_50'] > 0
    # and the boxes themselves agree, after mmdet's NMS
    batch = next(iter(build_test_loader(cfg)))
    data = model.data_preprocessor(batch, False)
    ours, ref = (p(data['inputs'], [s.clone() for s in data['data_samples']])
                 for p in (predictors['fp32'], predictors['pytorch']))
    for a, b in zip(ours, ref):
        assert len(b.pred_instances) > 0
        torch.testing.assert_close(a.pred_instances.bboxes,
                                   b.pred_instances.bboxes,
                                   rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(a.pred_instances.scores,
                                   b.pred_instances.scores,
                                   rtol=1e-4, atol=1e-5)


def test_segmentation_miou_through_onnxruntime_equals_pytorch(seg_root,
                                                              tmp_path):
    cfg, model, predictors = _setup(SEG_CFG, seg_options(seg_root[0]),
                                    tmp_path)
    metrics = evaluate(cfg, model, predictors)
    assert primary_metric(metrics['pytorch']) == 'mIoU'
    assert metrics['pytorch']['mIoU'] > 0
    assert metrics['fp32'] == pytest.approx(metrics['pytorch'], abs=1e-6)


def test_unflatten_restores_the_nesting():
    template = ([torch.zeros(1), torch.zeros(2)], (torch.zeros(3), ))
    flat = [torch.ones(1), torch.ones(2), torch.ones(3)]
    out = unflatten(template, flat)
    assert isinstance(out, tuple) and isinstance(out[0], list)
    assert [t.numel() for t in (*out[0], *out[1])] == [1, 2, 3]
    assert out[1][0] is flat[2]


def test_only_openmmlab_models_can_be_evaluated():
    with pytest.raises(UserError, match='--eval needs one of them'):
        task_of(nn.Conv2d(3, 3, 1))


def test_a_config_without_test_data_says_so(shapes_root):
    cfg = load_config(str(DET_CFG), det_options(shapes_root))
    cfg.test_dataloader.dataset.data_root = '/no/shapes/'
    with pytest.raises(UserError, match='test data not found.*/no/shapes'):
        build_test_loader(cfg)
    cfg.test_evaluator = None
    with pytest.raises(UserError, match='test_evaluator'):
        build_test_loader(cfg)


def test_test_loader_is_built_in_the_configs_scope(seg_root):
    """mmseg's BaseSegDataset is only in mmseg's registry: building the
    loader must not depend on what ran before (e.g. a fresh process that
    builds the loader before the model)."""
    from mmengine.registry import init_default_scope
    cfg = load_config(str(SEG_CFG), seg_options(seg_root[0]))
    init_default_scope('mmengine')
    loader = build_test_loader(cfg)
    assert len(loader.dataset) > 0
