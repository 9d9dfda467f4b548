#!/usr/bin/env python3
"""Set up (idempotently) the environment that `make demo` and `make test` use.

Runs with nothing but the standard library, on a machine that has only Python.

* With an activated virtualenv/conda environment that already has torch, that
  environment is used and its torch (e.g. a CUDA build) is kept.
* Otherwise a project-local ``.venv/`` is created.

Everything is pinned by ``requirements/constraints.txt``. A stamp file in the
environment records a hash of the inputs; when it matches (and the stack was
verified), the script exits at once. ``--print-python`` prints the interpreter
to use and does nothing else.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / '.venv'
CONSTRAINTS = ROOT / 'requirements' / 'constraints.txt'
STAMP_NAME = '.mobileone_mm-setup'
HASHED = ('requirements/constraints.txt', 'pyproject.toml', 'setup.py',
          'tools/setup_env.py')

# Checks run in the target environment (a subprocess: the stack is not
# importable from the interpreter running this script).
CHECK_TORCH = 'import torch, torchvision; print(torch.__version__)'
CHECK_MMCV_OPS = ('import torch, mmcv; from mmcv.ops import nms; '
                  "assert mmcv.__version__ == '2.1.0', mmcv.__version__; "
                  'b = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]]); '
                  'd, k = nms(b, torch.tensor([0.9, 0.8]), 0.5); '
                  'assert k.tolist() == [0], k')
CHECK_STACK = ('import mmengine, mmcv.ops, mmdet, mmseg, mmpretrain, '
               'coremltools, onnx, onnxruntime, pycocotools, mobileone_mm, '
               'mmdeploy.apis, aenum; '
               'import mmseg.utils, mmpretrain.models, mmdet.models; '
               "print('mmengine', mmengine.__version__, 'mmcv', mmcv.__version__, "
               "'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__, "
               "'mmpretrain', mmpretrain.__version__)")


def say(msg: str) -> None:
    print(f'[setup] {msg}', flush=True)


def active_env_python():
    """The interpreter of an activated environment that already has torch."""
    prefix = os.environ.get('VIRTUAL_ENV') or os.environ.get('CONDA_PREFIX')
    if not prefix or Path(prefix).resolve() == VENV.resolve():
        return None
    py = Path(prefix) / 'bin' / 'python'
    if not py.exists():
        return None
    ok = subprocess.run([str(py), '-c', 'import torch'],
                        capture_output=True).returncode == 0
    return py if ok else None


def target_python():
    return active_env_python() or VENV / 'bin' / 'python'


def inputs_hash() -> str:
    h = hashlib.sha256()
    for rel in HASHED:
        path = ROOT / rel
        h.update(rel.encode())
        if path.exists():
            h.update(path.read_bytes())
    return h.hexdigest()


def stamp_path(py: Path) -> Path:
    prefix = subprocess.run(
        [str(py), '-c', 'import sys; print(sys.prefix)'],
        capture_output=True, text=True, check=True).stdout.strip()
    return Path(prefix) / STAMP_NAME


def run(cmd, **kwargs):
    say('$ ' + ' '.join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def works(py: Path, code: str) -> bool:
    return subprocess.run([str(py), '-c', code],
                          capture_output=True).returncode == 0


def pip(py: Path, *args, **kwargs):
    run([py, '-m', 'pip', 'install', '--progress-bar', 'off', *args], **kwargs)


def install_mmcv(py: Path) -> None:
    if works(py, CHECK_MMCV_OPS):
        say('mmcv 2.1.0 with ops: already installed and working')
        return
    env = dict(os.environ, MMCV_WITH_OPS='1',
               MAX_JOBS=os.environ.get('MAX_JOBS', str(os.cpu_count() or 2)))
    for attempt, extra in enumerate(([], ['--no-cache-dir'])):
        if attempt == 1:
            say('mmcv.ops did not load (a cached wheel built against another '
                'torch?): rebuilding mmcv without pip\'s cache')
            run([py, '-m', 'pip', 'uninstall', '-y', 'mmcv'])
        say('Installing mmcv 2.1.0 from source with its CPU ops. The build '
            'takes about 13 minutes on 2 cores (a cached wheel installs in '
            'seconds); compiler output follows.')
        start = time.time()
        pip(py, '--no-build-isolation', '-c', CONSTRAINTS, *extra,
            'mmcv==2.1.0', env=env)
        say(f'mmcv installed in {time.time() - start:.0f} s; checking mmcv.ops')
        if works(py, CHECK_MMCV_OPS):
            return
    subprocess.run([str(py), '-c', CHECK_MMCV_OPS])
    sys.exit('[setup] mmcv.ops still fails to load after a clean rebuild; '
             'see the error above (is a C++ compiler installed?)')


def setup(py: Path, keep_torch: bool) -> None:
    steps = 4
    say(f'1/{steps} build prerequisites (torch, torchvision, numpy, ninja, '
        'setuptools<70)')
    base = ['numpy', 'ninja', 'wheel', 'setuptools']
    if keep_torch:
        say('keeping the torch of the active environment: '
            + subprocess.run([str(py), '-c', 'import torch; print(torch.__version__)'],
                             capture_output=True, text=True).stdout.strip())
        if not works(py, CHECK_TORCH):
            sys.exit('[setup] the active environment has torch but no working '
                     'torchvision; install the torchvision built for your '
                     'torch (see pytorch.org) and run make again')
        # Constraints would replace the user's torch; install the rest without them.
        pip(py, 'numpy<2', 'ninja', 'wheel', 'setuptools<70')
    else:
        pip(py, '-c', CONSTRAINTS, 'torch', 'torchvision', *base)
    say(f'2/{steps} mmcv')
    install_mmcv(py)
    say(f'3/{steps} mmengine, mmdet, mmsegmentation, mmpretrain, coremltools, '
        'onnx, onnxruntime, pycocotools, mmdeploy and mobileone_mm (editable)')
    constraint = [] if keep_torch else ['-c', CONSTRAINTS]
    pip(py, *constraint, '-e', f'{ROOT}[all,tests]')
    # mmdeploy's protobuf<=3.20.2 pin conflicts with onnx: no-deps (constraints.txt)
    pip(py, *constraint, '--no-deps', 'mmdeploy>=1.3.1,<1.4')
    say(f'4/{steps} checking that the stack imports together')
    run([py, '-c', CHECK_STACK], cwd=str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--print-python', action='store_true',
                        help='print the interpreter to use and exit')
    parser.add_argument('--force', action='store_true',
                        help='re-run every step even if the stamp matches')
    args = parser.parse_args()

    external = active_env_python()
    if args.print_python:
        print(external or VENV / 'bin' / 'python')
        return
    if external is None and not (VENV / 'bin' / 'python').exists():
        say(f'creating {VENV}')
        run([sys.executable, '-m', 'venv', VENV])
    py = target_python()
    stamp = stamp_path(py)
    digest = inputs_hash()
    if not args.force and stamp.exists() and stamp.read_text() == digest:
        say(f'environment ready ({py})')
        return
    say(f'setting up {py} (first run: ~20 minutes, mostly the mmcv build)')
    start = time.time()
    setup(py, keep_torch=external is not None)
    stamp.write_text(digest)
    say(f'environment ready in {time.time() - start:.0f} s ({py})')


if __name__ == '__main__':
    try:
        main()
    except subprocess.CalledProcessError as err:
        sys.exit(f'[setup] failed: {" ".join(map(str, err.cmd))} exited with '
                 f'{err.returncode}; fix the error above and run make again')
