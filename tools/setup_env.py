#!/usr/bin/env python3
"""Set up (idempotently) the environment that `make demo` and `make test` use.

This is the one tool whose logic lives in tools/ rather than in the package: it
runs under a bare system Python before anything, mobileone_mm included, is
installed, so it stays a self-contained script that uses only the standard
library and imports nothing from the package.

* With an activated virtualenv/conda environment that already has torch, that
  environment is used; its torch (e.g. a CUDA build) and the installed
  packages torch and torchvision need stay as they are. Before changing
  anything there, the script compares the environment with
  ``requirements/constraints.txt``; if a package would be installed, upgraded
  or downgraded, it lists them and stops unless given consent with
  ``--allow-env-changes`` or ``ALLOW_ENV_CHANGES=1`` (``make test
  ALLOW_ENV_CHANGES=1``). When nothing would change it goes on silently.
* Otherwise a project-local ``.venv/`` is created, and its pip is pinned below
  25.3 (``PIP_PIN``): from 25.3 on, pip no longer falls back to ``setup.py
  develop`` for the editable install, and ``mim train`` then cannot find the
  package's ``.mim`` tools and configs (build_tools/editable_backend.py).

Supported Python: 3.11, the tested one (``SUPPORTED_PYTHON``; the pins need at
least 3.11: pillow 13.0, networkx 3.6 and filelock 4.2 require it). Before it
creates ``.venv/`` or changes an environment, the script checks that version
and, when mmcv 2.1.0 must be built from source, a C++ compiler (``$CXX``, or
``c++``/``g++`` on PATH) and the Python headers (``Python.h``); each missing
piece stops it with one line naming the fix.

A stamp file in the environment records a hash of the inputs; when it matches
(and the stack was verified), the script exits at once. ``--print-python``
prints the interpreter to use and does nothing else. ``--dry-run`` makes the
same checks and prints the commands instead of running them.
"""
import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / '.venv'
CONSTRAINTS = ROOT / 'requirements' / 'constraints.txt'
STAMP_NAME = '.mobileone_mm-setup'
HASHED = ('requirements/constraints.txt', 'pyproject.toml', 'setup.py',
          'tools/setup_env.py')
SUPPORTED_PYTHON = (3, 11)
CONSENT_VAR = 'ALLOW_ENV_CHANGES'
# pip 25.3 removed the `setup.py develop` fallback that the editable install
# relies on (build_tools/editable_backend.py).
PIP_PIN = 'pip>=23,<25.3'
PIP_TOO_NEW = (25, 3)
# Kept as installed in a user's environment: torch, torchvision, the CUDA
# runtime and (found at run time) every installed package they require ...
TORCH_OWN = ('torch', 'torchvision', 'triton')
TORCH_OWN_PREFIX = 'nvidia-'
# ... except these, which mmcv 2.1.0 needs at their pins (numpy < 2, and
# setuptools < 70 for its setup.py).
STACK_PINNED = ('numpy', 'setuptools')

# Checks run in the target environment (a subprocess: the stack is not
# importable from the interpreter running this script).
CHECK_TORCH = 'import torch, torchvision; print(torch.__version__)'
CHECK_MMCV_OPS = ('import torch, mmcv; from mmcv.ops import nms; '
                  "assert mmcv.__version__ == '2.1.0', mmcv.__version__; "
                  'b = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]]); '
                  'd, k = nms(b, torch.tensor([0.9, 0.8]), 0.5); '
                  'assert k.tolist() == [0], k')
CHECK_STACK = ('import mmengine, mmcv.ops, mmdet, mmseg, mmpretrain, '
               'coremltools, onnx, onnxruntime, pnnx, ncnn, pycocotools, '
               'mobileone_mm, mmdeploy.apis, aenum; '
               'import mmseg.utils, mmpretrain.models, mmdet.models; '
               "print('mmengine', mmengine.__version__, 'mmcv', mmcv.__version__, "
               "'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__, "
               "'mmpretrain', mmpretrain.__version__)")
# What the script needs to know of an environment, printed as JSON by its python
# (not counting what `-c` makes importable from the current directory).
PROBE = '''
import json, sys, sysconfig
if sys.path and sys.path[0] == '':
    del sys.path[0]
try:
    from importlib import metadata
    found = metadata.distributions()
except ImportError:
    found = []
dists = {}
for d in found:
    name = d.metadata['Name']
    if name:
        dists.setdefault(name, [d.version, d.requires or []])
print(json.dumps({'version': list(sys.version_info[:3]), 'prefix': sys.prefix,
                  'include': sysconfig.get_paths()['include'], 'dists': dists}))
'''


def say(msg: str) -> None:
    print(f'[setup] {msg}', flush=True)


def fail(msg: str):
    raise SystemExit(f'error: {msg}')


def canonical(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r'[-_.]+', '-', name).lower()


def version_key(version: str):
    """Release numbers without trailing zeros, then the rest ('+cu121', 'rc1')."""
    match = re.match(r'(\d+(?:\.\d+)*)(.*)', version)
    if not match:
        return (), version
    release = [int(part) for part in match.group(1).split('.')]
    while release and release[-1] == 0:
        release.pop()
    return tuple(release), match.group(2)


@dataclass
class Env:
    """The environment to set up, as its python describes it."""

    python: Path
    version: tuple
    prefix: Path
    include: str
    dists: dict = field(default_factory=dict)  # canonical name -> (version, requires)
    external: bool = False  # a user's activated environment, not .venv/

    def installed(self, name: str):
        return self.dists.get(canonical(name), (None, []))[0]


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


def probe(py: Path, external: bool) -> Env:
    proc = subprocess.run([str(py), '-c', PROBE], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ['no output'])[-1]
        fail(f'could not inspect {py} ({last}); check that it runs')
    facts = json.loads(proc.stdout)
    dists = {}
    for name, (version, requires) in facts['dists'].items():
        dists.setdefault(canonical(name), (version, requires))
    return Env(py, tuple(facts['version']), Path(facts['prefix']),
               facts['include'], dists, external)


def target_env(external) -> Env:
    """The active environment, the existing .venv/, or the .venv/ to create."""
    if external is not None:
        return probe(external, external=True)
    py = VENV / 'bin' / 'python'
    if py.exists():
        return probe(py, external=False)
    return Env(py, tuple(sys.version_info[:3]), VENV,
               sysconfig.get_paths()['include'])


def check_python(env: Env) -> None:
    if tuple(env.version[:2]) == SUPPORTED_PYTHON:
        return
    have = '.'.join(map(str, env.version))
    need = '.'.join(map(str, SUPPORTED_PYTHON))
    rerun = f'rerun with a Python {need} (e.g. `make test PYTHON=python{need}`)'
    if env.external:
        where = f'the active environment {env.prefix}'
        fix = f'activate a Python {need} environment, or deactivate this one and {rerun}'
    elif env.python.exists():
        where, fix = str(VENV), f'remove .venv/ and {rerun}'
    else:
        where, fix = sys.executable, rerun
    fail(f'{where} has Python {have}, and the tested stack '
         f'(requirements/constraints.txt) needs Python {need}: {fix}')


def find_compiler():
    """The C++ compiler torch's extension build would use, or None."""
    cxx = os.environ.get('CXX', '').strip()
    if cxx:
        return shutil.which(shlex.split(cxx)[0])
    return shutil.which('c++') or shutil.which('g++')


def check_build_tools(env: Env) -> None:
    """What building mmcv 2.1.0's ops from source needs besides pip."""
    if find_compiler() is None:
        cxx = os.environ.get('CXX', '').strip()
        what = f'$CXX={cxx} not found' if cxx else 'no c++ or g++ on PATH'
        fail(f'building mmcv 2.1.0 needs a C++ compiler ({what}): install one '
             '(e.g. apt install g++) or set CXX to it, and run make again')
    if not (Path(env.include) / 'Python.h').is_file():
        dev = 'python{}.{}-dev'.format(*env.version[:2])
        fail(f'building mmcv 2.1.0 needs the Python headers (no Python.h in '
             f'{env.include}): install them (e.g. apt install {dev}) and run '
             'make again')


def works(py: Path, code: str) -> bool:
    return subprocess.run([str(py), '-c', code],
                          capture_output=True).returncode == 0


def check_prerequisites(env: Env) -> bool:
    """Stop, before any change, on what setup cannot fix; True if mmcv must be built."""
    check_python(env)
    if env.external and not works(env.python, CHECK_TORCH):
        fail('the active environment has torch but no working torchvision: '
             'install the torchvision built for your torch (see pytorch.org) '
             'and run make again')
    build_mmcv = not (env.python.exists() and works(env.python, CHECK_MMCV_OPS))
    if build_mmcv:
        check_build_tools(env)
    return build_mmcv


def torch_world(dists: dict) -> set:
    """torch, torchvision and the packages they require, transitively (no extras)."""
    owned, todo = set(), list(TORCH_OWN)
    while todo:
        name = todo.pop()
        if name in owned:
            continue
        owned.add(name)
        for req in dists.get(name, (None, []))[1]:
            spec, _, marker = req.partition(';')
            match = re.match(r'\s*([A-Za-z0-9][A-Za-z0-9._-]*)', spec)
            if match and 'extra' not in marker:
                todo.append(canonical(match.group(1)))
    return owned


def env_pins(env: Env) -> dict:
    """canonical name -> (name, version) of what setup installs into ``env``.

    ``requirements/constraints.txt``; in a user's environment torch's packages
    are pinned at their installed versions instead, so pip never replaces them.
    """
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        spec = line.split('#', 1)[0].strip()
        if '==' in spec:
            name, version = (part.strip() for part in spec.split('==', 1))
            pins[canonical(name)] = (name, version)
    if not env.external:
        return pins
    owned = torch_world(env.dists) - set(STACK_PINNED)
    kept = {key: pin for key, pin in pins.items()
            if key not in owned and not key.startswith(TORCH_OWN_PREFIX)}
    kept.update((key, (key, env.dists[key][0])) for key in owned if key in env.dists)
    return kept


def pip_too_new(env: Env) -> bool:
    version = env.installed('pip')
    return version is not None and version_key(version)[0] >= PIP_TOO_NEW


def planned_changes(env: Env, pins: dict, build_mmcv: bool) -> list:
    """What setup would install, upgrade or downgrade in ``env``, one line each."""
    changed, added = [], []
    for key, (name, new) in sorted(pins.items()):
        old = env.installed(key)
        if old is None:
            added.append(f'{name} {new} (install)')
        elif version_key(old) != version_key(new):
            step = 'upgrade' if version_key(new) > version_key(old) else 'downgrade'
            changed.append(f'{name} {old} -> {new} ({step})')
        elif key == 'mmcv' and build_mmcv:
            changed.append(f'{name} {old} (rebuild from source with its ops)')
    if pip_too_new(env):
        changed.append(f"pip {env.installed('pip')} -> {PIP_PIN} (downgrade: "
                       'the editable install needs `setup.py develop`)')
    if env.installed('wheel') is None:
        added.append('wheel (install, newest)')
    if env.installed('mobileone_mm') is None:
        added.append(f'mobileone_mm (install, editable from {ROOT})')
    return changed + added


def ask_consent(env: Env, changes: list, consent: bool) -> None:
    if not changes:
        return
    say(f'setup would change {len(changes)} package(s) in the active environment '
        f'{env.prefix} (to requirements/constraints.txt; torch and the packages '
        'it needs stay as they are):')
    for line in changes:
        print(f'  {line}', flush=True)
    if not consent:
        fail(f'nothing was changed. To allow it, rerun with {CONSENT_VAR}=1 (e.g. '
             f'`make test {CONSENT_VAR}=1`, or tools/setup_env.py '
             '--allow-env-changes); or deactivate this environment to use the '
             "project's own .venv/")
    say(f'{CONSENT_VAR}: changing them')


def write_constraints(env: Env, pins: dict, folder: str) -> Path:
    path = Path(folder) / 'constraints.txt'
    lines = [f'# requirements/constraints.txt, torch kept as in {env.prefix}']
    lines += [f'{name}=={version}' for name, version in sorted(pins.values())]
    path.write_text('\n'.join(lines) + '\n')
    return path


class Installer:
    """Runs (with ``dry_run``: prints) the installation steps into one python."""

    def __init__(self, py: Path, constraints: Path, dry_run: bool):
        self.py, self.constraints, self.dry_run = py, constraints, dry_run

    def run(self, cmd, **kwargs) -> None:
        cmd = [str(c) for c in cmd]
        if self.dry_run:
            say(f'would run: {shlex.join(cmd)}')
            return
        say(f'$ {shlex.join(cmd)}')
        subprocess.run(cmd, check=True, **kwargs)

    def pip(self, *args, **kwargs) -> None:
        self.run([self.py, '-m', 'pip', 'install', '--progress-bar', 'off', *args],
                 **kwargs)

    def mmcv(self, build: bool) -> None:
        if not build:
            say('mmcv 2.1.0 with ops: already installed and working')
            return
        env = dict(os.environ, MMCV_WITH_OPS='1',
                   MAX_JOBS=os.environ.get('MAX_JOBS', str(os.cpu_count() or 2)))
        for attempt, extra in enumerate(([], ['--no-cache-dir'])):
            if attempt == 1:
                say('mmcv.ops did not load (a cached wheel built against another '
                    'torch?): rebuilding mmcv without pip\'s cache')
                self.run([self.py, '-m', 'pip', 'uninstall', '-y', 'mmcv'])
            say('Installing mmcv 2.1.0 from source with its CPU ops. The build '
                'takes about 13 minutes on 2 cores (a cached wheel installs in '
                'seconds); compiler output follows.')
            start = time.time()
            self.pip('--no-build-isolation', '-c', self.constraints, *extra,
                     'mmcv==2.1.0', env=env)
            if self.dry_run:
                return
            say(f'mmcv installed in {time.time() - start:.0f} s; checking mmcv.ops')
            if works(self.py, CHECK_MMCV_OPS):
                return
        subprocess.run([str(self.py), '-c', CHECK_MMCV_OPS])
        fail('mmcv.ops still fails to load after a clean rebuild; see the error '
             'above')

    def stack(self, env: Env, build_mmcv: bool) -> None:
        steps, pinned = 4, ['-c', self.constraints]
        say(f'1/{steps} build prerequisites (pip<25.3, torch, torchvision, numpy, '
            'ninja, setuptools<70)')
        if env.external:
            say(f"keeping the torch of the active environment: {env.installed('torch')}")
            if pip_too_new(env):
                self.pip(PIP_PIN)
            self.pip(*pinned, 'numpy', 'ninja', 'wheel', 'setuptools')
        else:
            self.pip(PIP_PIN)
            self.pip(*pinned, 'torch', 'torchvision', 'numpy', 'ninja', 'wheel',
                     'setuptools')
        say(f'2/{steps} mmcv')
        self.mmcv(build_mmcv)
        say(f'3/{steps} mmengine, mmdet, mmsegmentation, mmpretrain, coremltools, '
            'onnx, onnxruntime, pnnx, ncnn, pycocotools, mmdeploy and '
            'mobileone_mm (editable)')
        self.pip(*pinned, '-e', f'{ROOT}[all,tests,docs]')
        # mmdeploy's protobuf<=3.20.2 pin conflicts with onnx: no-deps (constraints.txt)
        self.pip(*pinned, '--no-deps', 'mmdeploy>=1.3.1,<1.4')
        say(f'4/{steps} checking that the stack imports together')
        self.run([self.py, '-c', CHECK_STACK], cwd=str(ROOT))


def inputs_hash() -> str:
    h = hashlib.sha256()
    for rel in HASHED:
        path = ROOT / rel
        h.update(rel.encode())
        if path.exists():
            h.update(path.read_bytes())
    return h.hexdigest()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--print-python', action='store_true',
                        help='print the interpreter to use and exit')
    parser.add_argument('--force', action='store_true',
                        help='re-run every step even if the stamp matches')
    parser.add_argument('--allow-env-changes', action='store_true',
                        help='let setup install, upgrade or downgrade packages in '
                             f'an activated environment (or set {CONSENT_VAR}=1)')
    parser.add_argument('--dry-run', action='store_true',
                        help='make the checks, print the commands, change nothing')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    external = active_env_python()
    if args.print_python:
        print(external or VENV / 'bin' / 'python')
        return
    env = target_env(external)
    stamp, digest = env.prefix / STAMP_NAME, inputs_hash()
    if not args.force and stamp.exists() and stamp.read_text() == digest:
        say(f'environment ready ({env.python})')
        return
    build_mmcv = check_prerequisites(env)
    pins = env_pins(env)
    if env.external:
        consent = args.allow_env_changes or os.environ.get(CONSENT_VAR) == '1'
        ask_consent(env, planned_changes(env, pins, build_mmcv), consent)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix='mobileone_mm-setup-') as tmp:
        constraints = write_constraints(env, pins, tmp) if env.external else CONSTRAINTS
        installer = Installer(env.python, constraints, args.dry_run)
        if not env.python.exists():
            say(f'creating {VENV}')
            installer.run([sys.executable, '-m', 'venv', VENV])
        say(f'setting up {env.python} (first run: ~20 minutes, mostly the mmcv build)')
        installer.stack(env, build_mmcv)
    if args.dry_run:
        say('dry run: nothing was changed')
        return
    stamp.write_text(digest)
    say(f'environment ready in {time.time() - start:.0f} s ({env.python})')


if __name__ == '__main__':
    try:
        main()
    except subprocess.CalledProcessError as err:
        sys.exit(f'error: {shlex.join(map(str, err.cmd))} exited with '
                 f'{err.returncode}; fix the error above and run make again')
