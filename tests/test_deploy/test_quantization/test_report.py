"""The int8 report and table (mobileone_mm/deploy/quant_report.py)."""
import json

import pytest

from mobileone_mm.deploy.quantization.report import (NO_EVAL, REPORT_KEYS,
                                              format_quant_report,
                                              skipped_onnxruntime,
                                              write_quant_report)


def _report(**changes):
    metric = {'coco/bbox_mAP': 0.5, 'coco/bbox_mAP_50': 0.8}
    report = dict(
        fp32=dict(path='m.onnx', size_mb=1.0, metric=metric,
                  pytorch_metric=metric,
                  latency_ms=dict(min=2.0, median=2.5)),
        int8=dict(path='i.onnx', size_mb=0.3,
                  metric={'coco/bbox_mAP': 0.25, 'coco/bbox_mAP_50': 0.7},
                  latency_ms=dict(min=1.0, median=1.25),
                  ops={'QuantizeLinear': 3}),
        per_layer_snr_db=dict(worst=[dict(tensor='w', kind='weight',
                                          snr_db=12.5, layer='/conv7')]),
        coreml={'w8': dict(size_mb=0.25, metric={'coco/bbox_mAP': 0.375})},
        calibration=dict(source='dataset', split='train', images=4,
                         method='minmax', per_channel=True),
        machine=dict(cpu='x'))
    report.update(changes)
    return report


def test_json_has_exactly_the_sections(tmp_path):
    path = write_quant_report(dict(_report(), extra=1), str(tmp_path))
    saved = json.loads(open(path).read())
    assert tuple(saved) == REPORT_KEYS
    assert not (tmp_path / 'quant_report.json.tmp').exists()


def test_a_missing_section_or_nan_is_refused(tmp_path):
    report = _report()
    del report['coreml']
    with pytest.raises(ValueError, match='coreml'):
        write_quant_report(report, str(tmp_path))
    with pytest.raises(ValueError):
        write_quant_report(_report(machine=dict(x=float('nan'))),
                           str(tmp_path))


def test_table_shows_metric_latency_size_and_worst_layers():
    table = format_quant_report(_report())
    lines = table.splitlines()
    assert 'coco/bbox_mAP' in lines[0]
    int8 = next(line for line in lines if line.startswith('ORT int8'))
    assert int8.split()[2:] == ['0.250', '1.00', '1.25', '0.30']
    assert next(line for line in lines if line.startswith('Core ML w8')
                ).split()[3] == '0.375'
    assert '/conv7' in table and '12.50' in table
    assert 'per-channel' in table and 'train split' in table


def test_table_says_what_was_not_measured():
    skipped = skipped_onnxruntime('onnxruntime not requested')
    report = _report(calibration=dict(
        source='random', split=None, images=2, method='minmax',
        per_channel=False, warning='RANDOM input'), coreml=dict(
        skipped='coreml not requested'), **skipped)
    table = format_quant_report(report)
    assert NO_EVAL in table
    assert 'WARNING: RANDOM input' in table and 'per-tensor' in table
    assert 'ONNX Runtime: onnxruntime not requested' in table
    assert 'Core ML: coreml not requested' in table


def test_table_has_a_row_per_core_ml_package_and_says_how():
    source = 'pytorch with the decompressed Core ML weights'
    coreml = {name: dict(size_mb=size, metric={'coco/bbox_mAP': m},
                         max_rel_weight_error=err, metric_source=source)
              for name, size, m, err in (('fp16', 2.0, 0.5, 4e-4),
                                         ('w8', 1.0, 0.5, 4e-3),
                                         ('w6', 0.75, 0.4375, 0.017),
                                         ('w4', 0.5, 0.25, 0.068))}
    coreml['fp32'] = dict(size_mb=4.0, metric=None)
    coreml['a8w8'] = dict(metric=None, skipped='TraceError: cannot trace',
                          coreml_route='Exception: only on macOS')
    coreml['note'] = 'uniform palettes'
    lines = format_quant_report(_report(coreml=coreml)).splitlines()
    rows = {line.split()[2]: line.split()[3:] for line in lines
            if line.startswith('Core ML ') and len(line.split()) > 3
            and line.split()[2] in coreml}
    assert rows['w4'] == ['0.250', '-', '-', '0.50']
    assert rows['w6'] == ['0.438', '-', '-', '0.75']
    assert rows['fp32'] == ['-', '-', '-', '4.00']
    table = '\n'.join(lines)
    assert ('max relative error vs fp32: fp16 0.0004, w8 0.004, w6 0.017, '
            'w4 0.068') in table
    assert f'Core ML metric: {source}' in table
    assert 'Core ML a8w8: skipped: TraceError: cannot trace' in table
    assert 'made in PyTorch' not in table
    coreml['a8w8'] = dict(metric=None, size_mb=0.6, coreml_route='Exception: '
                          'only on macOS', calibration=dict(source='dataset',
                                                            images=32))
    table = format_quant_report(_report(coreml=coreml))
    assert ('Core ML a8w8: made in PyTorch (coremltools.optimize.torch '
            'LinearQuantizer), activations calibrated on 32 dataset images; '
            'the Core ML-side route here: Exception: only on macOS') in table
    assert 'Core ML: uniform palettes' in table
