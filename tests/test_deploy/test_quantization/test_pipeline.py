"""The quantize tool's API (mobileone_mm/deploy/quant_pipeline.py): a tiny
demo detector fused, exported, quantized on its training images, evaluated
through PyTorch, ONNX Runtime fp32 and int8, with the Core ML section from
``coreml_compress`` (a stand-in here, to check the wiring) and every report
field."""
import json
import sys
import types

import pytest
import torch

from mobileone_mm.deploy.quantization.pipeline import (QuantizeOptions,
                                                coreml_section,
                                                quantize_config)
from mobileone_mm.apis import build_model, load_config
from mobileone_mm.deploy.quantization.report import REPORT_KEYS
from mobileone_mm.deploy.fusion import count_unfused
from mobileone_mm.utils.errors import UserError

from .quant_cases import CLS_CFG, DET_CFG, cls_options, det_options


def _fake_coreml(seen):
    """A stand-in ``coreml_compress`` that records what it was given and
    reports the metric its ``evaluate`` callback returns."""
    def compress_coreml(fused, example, work_dir, evaluate=None,
                        calibration=None):
        seen.update(fused=fused, example=example, work_dir=work_dir,
                    calibration=calibration)
        return {'w8': dict(size_mb=0.1,
                           metric=evaluate(fused) if evaluate else None)}

    module = types.ModuleType('mobileone_mm.deploy.quantization.coreml_compress')
    module.compress_coreml = compress_coreml
    return module


@pytest.fixture
def fake_coreml(monkeypatch):
    seen = {}
    module = _fake_coreml(seen)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return seen


@pytest.fixture(scope='module')
def det_report(shapes_root, tmp_path_factory):
    work = tmp_path_factory.mktemp('quant_det')
    seen = {}
    module = _fake_coreml(seen)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, module.__name__, module)
        report = quantize_config(
            str(DET_CFG), None, str(work),
            QuantizeOptions(calib_images=4, evaluate=True, runs=5),
            det_options(shapes_root), verbose=False)
    return report, work, seen


def test_report_has_every_field(det_report):
    report, work, _ = det_report
    saved = json.loads((work / 'quant_report.json').read_text())
    assert tuple(saved) == REPORT_KEYS == tuple(report)
    for name in ('fp32', 'int8'):
        assert set(saved[name]) >= {'metric', 'latency_ms', 'path'}
        assert 0 < saved[name]['latency_ms']['min'] <= \
            saved[name]['latency_ms']['median']
    assert saved['int8']['ops']['QuantizeLinear'] > 0
    assert saved['int8']['ops']['DequantizeLinear'] > 0
    assert saved['int8']['initializers']['INT8'] > 0
    assert set(saved['calibration']) >= {'source', 'split', 'images',
                                         'method', 'per_channel'}
    assert saved['calibration'] == dict(saved['calibration'], source='dataset',
                                        split='train', images=4,
                                        method='minmax', per_channel=True)
    assert len(saved['per_layer_snr_db']['worst']) == 5
    assert saved['per_layer_snr_db']['weights']
    assert saved['machine']['cores'] >= 1 and saved['machine']['onnxruntime']


def test_metrics_pytorch_fp32_int8(det_report):
    report = det_report[0]
    pytorch = report['fp32']['pytorch_metric']
    assert report['fp32']['metric'] == pytorch  # ONNX Runtime fp32 == PyTorch
    assert pytorch['coco/bbox_mAP_50'] > 0
    assert set(report['int8']['metric']) == set(pytorch)
    assert 'metric_note' not in report['fp32']


def test_coreml_gets_the_fused_model_and_a_pytorch_evaluator(det_report):
    report, work, seen = det_report
    assert report['coreml']['w8']['metric'] == report['fp32']['pytorch_metric']
    assert seen['work_dir'] == str(work / 'coreml')
    assert seen['example'].shape == (1, 3, 128, 128)
    assert count_unfused(seen['fused']) == 0
    # a8w8 is calibrated on the images ONNX Runtime is calibrated on
    assert len(seen['calibration']) == 4
    assert all(b.shape == (1, 3, 128, 128) for b in seen['calibration'])


def test_int8_model_runs_and_inputs_are_untouched(det_report):
    report, work, _ = det_report
    assert (work / 'model_int8.onnx').is_file()
    assert report['int8']['path'] == str(work / 'model_int8.onnx')
    assert report['fp32']['model']['checkpoint'] is None


def test_random_calibration_is_declared(tmp_path, capsys, fake_coreml):
    report = quantize_config(
        str(CLS_CFG), None, str(tmp_path),
        QuantizeOptions(calib_images=2, runs=3, backends=['onnxruntime']),
        dict(cls_options(), **{'train_dataloader.dataset.data_root':
                               str(tmp_path / 'no_imagenet')}))
    err = capsys.readouterr().err
    assert 'RANDOM' in err and 'no checkpoint' in err
    saved = json.loads((tmp_path / 'quant_report.json').read_text())
    assert saved['calibration']['source'] == 'random'
    assert 'RANDOM' in saved['calibration']['warning']
    for name in ('fp32', 'int8'):  # no --eval: null, and why
        assert saved[name]['metric'] is None
        assert '--eval' in saved[name]['metric_note']
    assert saved['coreml'] == {'skipped': 'coreml not requested (--backend)'}
    assert not fake_coreml
    assert report['int8']['ops']['QuantizeLinear'] > 0


def test_coreml_section_without_the_module(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'mobileone_mm.deploy.quantization.coreml_compress',
                        None)  # import fails
    section = coreml_section(torch.nn.Identity(), torch.zeros(1), '/tmp',
                             None, verbose=True)
    assert 'unavailable' in section['skipped']
    assert 'Core ML compression skipped' in capsys.readouterr().err


def test_missing_data_with_a_checkpoint_is_an_error(shapes_root, tmp_path):
    options = dict(det_options(shapes_root), **{
        'train_dataloader.dataset.data_root': str(tmp_path / 'none') + '/'})
    ckpt = tmp_path / 'model.pth'
    model = build_model(load_config(str(DET_CFG), options))
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    with pytest.raises(UserError, match='train data not found.*none'):
        quantize_config(str(DET_CFG), str(ckpt), str(tmp_path / 'w'),
                        QuantizeOptions(backends=['onnxruntime']), options,
                        verbose=False)


def test_refuses_a_work_dir_that_holds_the_input(tmp_path):
    ckpt = tmp_path / 'model_int8.onnx'
    ckpt.write_bytes(b'user data')
    with pytest.raises(UserError, match='would be overwritten'):
        quantize_config(str(CLS_CFG), str(ckpt), str(tmp_path),
                        QuantizeOptions(), cls_options(), verbose=False)
    assert ckpt.read_bytes() == b'user data'


@pytest.mark.parametrize('kwargs,match', [
    (dict(backends=['tflite']), 'unsupported backend'),
    (dict(backends=[]), 'no backend given: choose from onnxruntime coreml'),
    (dict(backends=['ncnn']), "ncnn int8 needs ncnn's C\\+\\+ quantization "
                              'tools'),
    (dict(method='kl'), 'unsupported --method'),
    (dict(calib_split='test'), 'unsupported --calib-split'),
    (dict(calib_images=0), '--calib-images must be >= 1'),
    (dict(runs=0), '--runs must be >= 1'),
])
def test_bad_options(kwargs, match):
    with pytest.raises(UserError, match=match):
        QuantizeOptions(**kwargs)
