"""Verdicts, report.json and the terminal table (mobileone_mm/deploy/report.py)."""
import json

import pytest

from mobileone_mm.deploy.compare import RTOL
from mobileone_mm.deploy.report import (_failures, _too_far, conclude,
                                        format_report, write_report)

STATS = dict(min=1.0, median=1.5, p90=2.0, runs=3)
CHAIN = '43 conv = 43 fused blocks, 0 add: a plain chain'


def section(diff=1e-7, scale=2.0, **extra):
    return dict(max_abs_diff=diff, max_rel_diff=diff / scale,
                max_abs_output=scale, **extra)


def passing_report(full_model=False):
    report = dict(
        config='configs/x.py', checkpoint=None, input_shape=[1, 3, 64, 64],
        arch='s0', notes=['a note'], backends=['coreml', 'onnxruntime'],
        fusion=section(unfused_blocks=0, fused_blocks=43),
        coreml=dict(path='b.mlpackage', ops={'conv': 43, 'relu': 43,
                                             'const': 90},
                    branch_free=True, chain=CHAIN, latency_ms=None,
                    compute_units='all', note='Core ML latency needs macOS'),
        onnxruntime=section(path='b.onnx', ops={'Conv': 43}, branch_free=True,
                     chain=CHAIN.replace('conv', 'Conv').replace('add', 'Add'),
                     latency_ms=STATS),
        torch=dict(latency_ms=dict(unfused=STATS, fused=STATS)))
    if full_model:
        report['full_model'] = dict(
            coreml=dict(report['coreml'], ops={'conv': 79}),
            onnxruntime=section(ops={'Conv': 79}, latency_ms=STATS),
            torch=dict(latency_ms=dict(unfused=STATS, fused=STATS)))
        for key in ('branch_free', 'chain'):
            del report['full_model']['coreml'][key]
    return report


def test_too_far_uses_the_shared_tolerance():
    assert not _too_far(section(diff=RTOL * 5.0, scale=5.0))
    assert _too_far(section(diff=RTOL * 5.0 * 1.01, scale=5.0))
    # outputs below 1: the allowance is RTOL itself
    assert not _too_far(section(diff=RTOL, scale=0.01))
    assert _too_far(section(diff=RTOL * 1.01, scale=0.01))


def test_passing_report_has_no_failures():
    report = conclude(passing_report(full_model=True))
    assert report['failures'] == [] and report['checks_passed']
    assert report['branch_free'] is True


def test_each_failed_check_is_named():
    report = passing_report(full_model=True)
    report['fusion'].update(unfused_blocks=2, max_abs_diff=1.0)
    report['coreml'].update(branch_free=False, chain='branches remain: x')
    report['onnxruntime']['max_abs_diff'] = 0.5
    report['full_model']['onnxruntime']['max_abs_diff'] = 0.25
    failures = _failures(report)
    assert failures == [
        '2 MobileOne blocks still have branches after reparameterize',
        'fused vs unfused outputs differ: max|diff| 1, largest output 2 '
        f'(allowed {RTOL:g} x max(largest output, 1))',
        'coreml backbone is not branch-free: branches remain: x',
        'ONNX Runtime vs PyTorch (backbone): max|diff| 0.5, largest output 2 '
        f'(allowed {RTOL:g} x max(largest output, 1))',
        'ONNX Runtime vs PyTorch (full model): max|diff| 0.25, largest '
        f'output 2 (allowed {RTOL:g} x max(largest output, 1))']
    report = conclude(report)
    assert report['branch_free'] is False and not report['checks_passed']


def test_unfused_blocks_alone_are_not_branch_free():
    report = passing_report()
    report['fusion']['unfused_blocks'] = 1
    assert conclude(report)['branch_free'] is False


def test_only_requested_backends_count():
    report = passing_report()
    report['backends'] = ['onnxruntime']
    report['coreml'] = None
    assert conclude(report)['checks_passed']


def test_write_report(tmp_path):
    report = conclude(passing_report())
    path = write_report(report, str(tmp_path))
    assert path == str(tmp_path / 'report.json') == report['report_path']
    saved = json.loads((tmp_path / 'report.json').read_text())
    assert saved['onnxruntime']['ops'] == {'Conv': 43} and saved['checks_passed']
    assert [p.name for p in tmp_path.iterdir()] == ['report.json']


def test_unserializable_report_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_report(dict(bad=object()), str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_format_report():
    report = conclude(passing_report(full_model=True))
    report['report_path'] = 'out/report.json'
    text = format_report(report)
    lines = text.splitlines()
    assert lines[0] == 'configs/x.py  input (1, 3, 64, 64)  MobileOne-S0'
    assert lines[1] == 'note: a note'
    assert 'backbone Core ML ops: conv 43, relu 43' in lines  # const hidden
    assert f'  branch-free: {CHAIN}' in lines
    assert 'model Core ML ops: conv 79' in lines
    assert '  ONNX Runtime                 1.00     1.50     2.00' in lines
    assert '  Core ML (all)                   -        -        -' in lines
    assert '  note: Core ML latency needs macOS' in lines
    assert lines[-1].startswith('3 runs after 1 warm-up')
    assert lines[-1].endswith('report: out/report.json')
    report['onnxruntime']['branch_free'] = False
    assert '  NOT branch-free: ' in format_report(report)


def test_format_report_has_a_column_per_thread_count():
    report = passing_report()
    by = {'1': dict(STATS, min=3.0), '2': STATS}
    report['onnxruntime']['latency_ms_by_threads'] = by
    report['torch']['latency_ms_by_threads'] = {
        n: dict(unfused=s, fused=s) for n, s in by.items()}
    lines = format_report(conclude(report)).splitlines()
    assert 'backbone latency (ms)        1 thr min   2 thr min      min   ' \
        'median      p90' in lines
    assert '  ONNX Runtime                    3.00        1.00     1.00     ' \
        '1.50     2.00' in lines
    assert '  Core ML (all)                      -           -        -' \
        '        -        -' in lines
