"""The training benchmark times what it says and computes its ratios from
the times it measured (tiny sizes: the figures belong to docs/en/notes/training_speed.md)."""
import pytest

from mobileone_mm.benchmark import training


def test_run_training_ratios_come_from_the_times():
    report = training.run_training(archs=('s0', ), settings=((2, 32), ),
                                   runs=1, rounds=1, threads=1)
    times = report['times_ms']
    assert set(times) == {'train/s0/2/32/reference', 'train/s0/2/32/fast',
                          'eval/s0/2/32/reference', 'eval/s0/2/32/fast',
                          'eval/s0/2/32/fused'}
    rows = {(r['mode'], r['impl']): r for r in report['speedups']}
    train = rows[('train', 'fast')]
    assert train['speedup'] == pytest.approx(
        times['train/s0/2/32/reference']['min']
        / times['train/s0/2/32/fast']['min'])
    assert train['goal'] == 1.5
    assert train['status'] == ('PASS' if train['speedup'] >= 1.5 else 'FAIL')
    assert rows[('eval', 'fused')]['goal'] is None
    text = training.format_training(report)
    assert 'per-branch ms' in text and '>= 1.5' in text
    assert report['machine']['cores'] >= 1


def test_unknown_extra_is_refused():
    with pytest.raises(ValueError, match='channels_last'):
        training.run_training(extras=('cuda_graphs', ))
