from mobileone_mm.demos.backbone import OFFICIAL, run


def test_s0_fuses_exactly_with_the_official_size(capsys):
    # 64 px keeps it quick; parameters do not depend on the input size
    rows = run(['s0'], runs=1, size=64)
    out = capsys.readouterr().out
    assert [row['arch'] for row in rows] == ['s0']
    row = rows[0]
    assert row['params'] == 2_078_504  # ml-mobileone's fused S0 classifier
    assert row['fusion_ok'] and row['fusion_diff'] < 1e-6  # float64
    assert row['macs'] > 0 and row['unfused_ms'] > 0 and row['fused_ms'] > 0
    assert ['s0', '2.079'] in [line.split()[:2] for line in out.splitlines()]
    assert OFFICIAL in out
