"""tools/setup_env.py: which environment `make` uses, and the no-op rerun."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / 'tools' / 'setup_env.py'


def run_setup(*args, env=None):
    return subprocess.run([sys.executable, str(SETUP), *args], capture_output=True,
                          text=True, cwd=ROOT, env=env)


def test_active_environment_with_torch_is_kept(tmp_path):
    # an activated environment whose python has torch (this interpreter's)
    fake = tmp_path / 'userenv'
    (fake / 'bin').mkdir(parents=True)
    python = fake / 'bin' / 'python'
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    env = dict(os.environ, VIRTUAL_ENV=str(fake))
    env.pop('CONDA_PREFIX', None)
    out = run_setup('--print-python', env=env).stdout.strip()
    assert out == str(fake / 'bin' / 'python')


def test_environment_without_torch_falls_back_to_project_venv(tmp_path):
    bare = tmp_path / 'bare'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(bare)],
                   check=True)
    env = dict(os.environ, VIRTUAL_ENV=str(bare))
    env.pop('CONDA_PREFIX', None)
    out = run_setup('--print-python', env=env).stdout.strip()
    assert out == str(ROOT / '.venv' / 'bin' / 'python')


def test_second_run_installs_nothing():
    # `make test` runs the suite after setting this environment up
    if not (Path(sys.prefix) / '.mobileone_mm-setup').exists():
        pytest.skip('this environment was not set up by tools/setup_env.py')
    env = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'CONDA_PREFIX')}
    if Path(sys.prefix).resolve() != (ROOT / '.venv').resolve():
        env['VIRTUAL_ENV'] = sys.prefix  # an activated environment of the user's
    proc = run_setup(env=env)
    assert proc.returncode == 0, proc.stderr
    assert 'environment ready' in proc.stdout
    assert 'pip' not in proc.stdout and 'mmcv' not in proc.stdout
