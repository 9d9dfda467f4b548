"""Misuse of the fusion, export and conversion tools stops with one line
naming the fix, as a user meets it: each tool a subprocess, exit status not
0, no traceback (train.py/test.py: test_train_test_tools.py). The tools
start together (their start-up is mostly imports, one core each)."""
import subprocess
import sys

import torch

from mobileone_mm.models import LinearClassifier, MobileOne

from ..conftest import ROOT, subprocess_env

CLS = ROOT / 'configs' / 'classification' / 'mobileone_s0_in1k.py'
DET = ROOT / 'configs' / 'detection' / 'ssdlite_mobileone_s0.py'
TOOLS = ROOT / 'tools'
S9 = ['--cfg-options', 'model.backbone.arch=s9']
UNKNOWN_ARCH = ("unknown MobileOne arch 's9': choose one of s0, s1, s2, s3, "
                "s4 (e.g. --cfg-options model.backbone.arch=s0)")


def run_all(cases: dict, cwd) -> dict:
    """Start every ``name: [tool, args...]`` at once; their outputs."""
    procs = {name: subprocess.Popen(
        [sys.executable, str(TOOLS / cmd[0]), *map(str, cmd[1:])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=cwd, env=subprocess_env()) for name, cmd in cases.items()}
    return {name: (p.wait(timeout=600), p.stdout.read())
            for name, p in procs.items()}


def refusal(result) -> str:
    code, out = result
    assert code != 0, out[-3000:]
    assert 'Traceback' not in out, out[-3000:]
    return out.rsplit('error: ', 1)[1].strip()


def test_bad_files_and_unknown_arch(tmp_path):
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(b'PK\x03\x04 not really a zip archive')
    good = tmp_path / 'good.pth'
    torch.save(LinearClassifier(MobileOne('s0', init_cfg=None)).state_dict(),
               good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    cases = {
        # one real process per tool and kind of misuse; the same tools on
        # hundreds of malformed files, in process: test_fuzzed_inputs.py
        'fuse broken': ['reparameterize.py', CLS, broken, tmp_path / 'a.pth'],
        'fuse missing': ['reparameterize.py', CLS, tmp_path / 'none.pth',
                         tmp_path / 'c.pth'],
        'deploy arch': ['deploy.py', DET, '--backends', 'onnx', '--runs', '1',
                        '--work-dir', tmp_path / 'e', *S9],
        'convert truncated': ['convert_checkpoint.py', truncated,
                              tmp_path / 'g.pth'],
    }
    out = run_all(cases, tmp_path)
    assert refusal(out['fuse broken']).startswith(
        f'{broken}: cannot read as a checkpoint')
    assert refusal(out['convert truncated']).startswith(
        f'{truncated}: cannot read as a checkpoint')
    assert refusal(out['fuse missing']) == \
        f'checkpoint not found: {tmp_path / "none.pth"}'
    assert refusal(out['deploy arch']).startswith(UNKNOWN_ARCH)
    assert not list(tmp_path.glob('?.pth'))  # nothing written
