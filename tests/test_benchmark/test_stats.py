"""Goals and the Table 1a correlations, from hand-made report rows."""
import pytest

from mobileone_mm.benchmark import stats


def row(torch_ms, onnx_ms=None):
    """A report row with the given minimum latencies (medians: twice)."""
    lat = {'torch': {'min': torch_ms, 'median': 2 * torch_ms}}
    if onnx_ms is not None:
        lat['onnxruntime'] = {'min': onnx_ms, 'median': 2 * onnx_ms}
    return {'latency_ms': lat}


def test_goal_status_logic():
    good = {'mobileone_s0': row(10.), 'mobileone_s0_fused': row(1., 0.4),
            'mobilenet_v2_1.0': row(2.5)}
    assert [g['status'] for g in stats.goals(good)] == ['PASS'] * 3
    assert [g['ratio'] for g in stats.goals(good)] == pytest.approx([0.4, 10., 2.5])
    assert [g['ratio_of_medians'] for g in stats.goals(good)] == \
        pytest.approx([0.4, 10., 2.5])
    bad = {'mobileone_s0': row(4.), 'mobileone_s0_fused': row(1., 0.9),
           'mobilenet_v2_1.0': row(1.5)}
    assert [g['status'] for g in stats.goals(bad)] == ['FAIL'] * 3
    assert stats.goals({})[0]['status'] == 'MISSING'


def test_goal_thresholds_are_inclusive_and_named():
    # exactly on each threshold: 0.5, 5x, 2x
    edge = {'mobileone_s0': row(5.), 'mobileone_s0_fused': row(1., 0.5),
            'mobilenet_v2_1.0': row(2.)}
    out = stats.goals(edge)
    assert [g['status'] for g in out] == ['PASS'] * 3
    assert [g['goal'] for g in out] == [f'{text} {op} {target}'
                                        for text, op, target in stats.GOALS]


def test_goal_without_onnx_is_missing_others_measured():
    rows = {'mobileone_s0': row(10.), 'mobileone_s0_fused': row(1.),
            'mobilenet_v2_1.0': row(2.5)}
    out = stats.goals(rows)
    assert [g['status'] for g in out] == ['PASS', 'PASS', 'MISSING']
    assert out[2]['ratio'] is None and out[2]['ratio_of_medians'] is None


def test_spearman_ranks_latency_against_macs_and_params():
    # latency rises with MACs; params in the opposite order
    results = {name: dict(row(ms), macs=macs, params=params)
               for name, ms, macs, params in (('a', 1., 10, 30), ('b', 2., 20, 20),
                                              ('c', 3., 30, 10), ('d', 4., 40, 5))}
    out = stats.spearman(results, 'torch')
    assert out['models'] == 4
    assert out['macs']['corr'] == pytest.approx(1.)
    assert out['params']['corr'] == pytest.approx(-1.)
    assert 0 <= out['macs']['p_value'] < 0.05
    # a backend measured for fewer than 3 models gives no correlation
    assert stats.spearman(results, 'onnxruntime') == dict(models=0,
                                                   note='needs at least 3 models')
