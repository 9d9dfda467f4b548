"""tools/convert_checkpoint.py as a user runs it: output, exit status and
one-line errors (the conversion itself: tests/test_checkpoint/)."""
from pathlib import Path

import torch

from ..utils import apple_model, check_outputs
from ..utils import run_cli

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'convert_checkpoint.py'


def run_tool(*args):
    return run_cli(TOOL, *args, cwd=ROOT)


def test_apple_fused_checkpoint(tmp_path):
    ref = apple_model('s2', fused=True)
    src = tmp_path / 'mobileone_s2.pth.tar'
    torch.save({'state_dict': {f'module.{k}': v
                               for k, v in ref.state_dict().items()}}, src)
    dst = tmp_path / 'fused.pth'
    proc = run_tool(src, dst)
    assert proc.returncode == 0, proc.stderr
    assert 'S2 fused' in proc.stdout
    sd = torch.load(dst, weights_only=True)['state_dict']
    assert any('reparam_conv' in k for k in sd)
    check_outputs(ref.double(), sd, 's2', fused=True)


def test_partial_checkpoint_names_missing_keys_and_writes_nothing(tmp_path):
    sd = apple_model('s0').state_dict()
    del sd['stage2.3.rbr_conv.1.bn.running_var']
    src = tmp_path / 'partial.pth.tar'
    torch.save(sd, src)
    dst = tmp_path / 'out.pth'
    proc = run_tool(src, dst)
    assert proc.returncode != 0
    assert 'stage2.3.conv_kxk.1.bn.running_var' in proc.stderr
    assert 'missing' in proc.stderr and 'Traceback' not in proc.stderr
    assert not dst.exists()


def test_corrupt_and_foreign_files(tmp_path):
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'not a checkpoint at all' * 10)
    proc = run_tool(corrupt, tmp_path / 'x.pth')
    assert proc.returncode != 0
    assert proc.stderr.strip().startswith('error:') and 'Traceback' not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

    foreign = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1)}, foreign)
    proc = run_tool(foreign, tmp_path / 'y.pth')
    assert proc.returncode != 0 and 'unrecognised' in proc.stderr

    proc = run_tool(tmp_path / 'missing.pth', tmp_path / 'z.pth')
    assert proc.returncode != 0 and 'no such file' in proc.stderr


def test_refuses_to_overwrite_input(tmp_path):
    src = tmp_path / 'mobileone_s0_unfused.pth.tar'
    torch.save(apple_model('s0').state_dict(), src)
    before = src.read_bytes()
    proc = run_tool(src, src)
    assert proc.returncode != 0 and 'refusing to overwrite' in proc.stderr
    assert src.read_bytes() == before
