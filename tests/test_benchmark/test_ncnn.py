"""The ncnn rows (``--ncnn``): the models exported through the deploy
backends, checked against PyTorch and timed side by side per thread count."""
import pytest

from mobileone_mm.benchmark import ncnn
from mobileone_mm.utils.errors import UserError


def test_ncnn_rows_time_three_runtimes_per_thread_count(tmp_path):
    rows = ncnn.ncnn_rows(['mobileone_s0_fused', 'mobileone_s0'],
                          (1, 3, 64, 64), runs=2, work_dir=str(tmp_path),
                          threads=(1, 2), log=lambda msg: None)
    assert list(rows) == ['mobileone_s0_fused']  # unfused S0: no ncnn row
    row = rows['mobileone_s0_fused']
    assert set(row['latency_ms']) == {'1', '2'}
    for per_runtime in row['latency_ms'].values():
        assert set(per_runtime) == set(ncnn.RUNTIMES)
        assert all(s['runs'] == 2 and s['min'] > 0
                   for s in per_runtime.values())
    assert row['max_rel_diff']['ncnn'] < 1e-5
    assert row['max_rel_diff']['onnxruntime'] < 1e-5
    lines = ncnn.ncnn_lines(dict(ncnn=dict(protocol='p', rows=rows)))
    assert len(lines) == 2 + 2 and lines[2].startswith('mobileone_s0_fused')
    lat = row['latency_ms']['1']
    assert f"{lat['ncnn']['min'] / lat['onnxruntime']['min']:.2f}" in lines[2]


def test_ncnn_needs_one_of_its_models():
    with pytest.raises(UserError, match='--ncnn measures mobileone_s0_fused'):
        ncnn.check_ncnn(['mobileone_s0'])
