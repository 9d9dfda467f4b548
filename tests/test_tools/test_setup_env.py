"""tools/setup_env.py: which environment `make` uses, consent before changing a
user's environment, the checks before a build, and the no-op rerun.

Every case that could install something runs a copy of the script in a
temporary project (its ``.venv/`` is then a temporary folder) against fake
environments: venvs holding stub packages with dist-info versions.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / 'tools' / 'setup_env.py'
COPIED = ('tools/setup_env.py', 'requirements/constraints.txt', 'pyproject.toml',
          'setup.py')
CONSENT = 'ALLOW_ENV_CHANGES'
# A user's CUDA torch world as its metadata describes it; none of it may change.
TORCH = {
    'torch': ('2.7.1', ['filelock', 'sympy>=1.13.3',
                        'nvidia-cublas-cu12==12.6.4.1; platform_system == "Linux"',
                        'opt-einsum>=3.3; extra == "opt-einsum"']),
    'torchvision': ('0.22.1', ['numpy', 'torch==2.7.1', 'pillow!=8.3.*,>=5.3.0',
                               'scipy; extra == "scipy"']),
    'filelock': '3.13.1',
    'sympy': '1.13.1',
    'pillow': '10.4.0',
    'nvidia-cublas-cu12': '12.6.4.1',
}
STUBS = {
    'torch/__init__.py': "__version__ = '2.7.1'\n\ndef tensor(data):\n    return data\n",
    'torchvision/__init__.py': '',
}
MMCV_STUBS = {  # enough for the script's mmcv.ops check to pass
    'mmcv/__init__.py': "__version__ = '2.1.0'\n",
    'mmcv/ops.py': ('class _Kept:\n    def tolist(self):\n        return [0]\n\n'
                    'def nms(boxes, scores, iou):\n    return None, _Kept()\n'),
}


def run_setup(*args, env=None, script=SETUP):
    return subprocess.run([sys.executable, str(script), *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)


def load(root):
    """The script as a module (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location(
        'setup_env_under_test', root / 'tools' / 'setup_env.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pin(name):
    for line in (ROOT / 'requirements' / 'constraints.txt').read_text().splitlines():
        spec = line.split('#', 1)[0].strip()
        if spec.lower().startswith(f'{name}=='):
            return spec.split('==', 1)[1]
    raise KeyError(name)


@pytest.fixture
def project(tmp_path):
    """A copy of what the script reads: its .venv/ is then under tmp_path."""
    root = tmp_path / 'project'
    for rel in COPIED:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, root / rel)
    return root


def user_env(tmp_path, dists, mmcv_works=True, python_version=None):
    """An activated environment with torch: a venv with stub packages."""
    prefix = tmp_path / 'userenv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(prefix)],
                   check=True)
    site = next(prefix.glob('lib/python*/site-packages'))
    files = dict(STUBS, **(MMCV_STUBS if mmcv_works else {}))
    dists = {**TORCH, **dists, **({'mmcv': '2.1.0'} if mmcv_works else {})}
    for name, spec in dists.items():
        version, requires = (spec, []) if isinstance(spec, str) else spec
        lines = ['Metadata-Version: 2.1', f'Name: {name}', f'Version: {version}']
        lines += [f'Requires-Dist: {req}' for req in requires]
        files[f'{name}-{version}.dist-info/METADATA'] = '\n'.join(lines) + '\n'
    if python_version:  # what sys.version_info says in that environment
        files['_fake_version.pth'] = (
            'import sys, collections; sys.version_info = collections.namedtuple('
            "'version_info', 'major minor micro releaselevel serial')"
            f"(*{python_version!r}, 'final', 0)\n")
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    return prefix


def activated(prefix=None, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ('VIRTUAL_ENV', 'CONDA_PREFIX', CONSENT)}
    env['PYTHONDONTWRITEBYTECODE'] = '1'  # keeps the fake environments unchanged
    if prefix is not None:
        env['VIRTUAL_ENV'] = str(prefix)
    env.update(extra)
    return env


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in folder.rglob('*')}


def fake_compiler(tmp_path):
    cxx = tmp_path / 'bin' / 'g++'
    cxx.parent.mkdir(exist_ok=True)
    cxx.write_text('#!/bin/sh\nexit 0\n')
    cxx.chmod(0o755)
    return cxx


def assert_refused(proc, *phrases):
    assert proc.returncode != 0, proc.stdout
    assert 'Traceback' not in proc.stdout + proc.stderr
    error = proc.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith('error: '), proc.stderr
    for phrase in phrases:
        assert phrase in error[0], error[0]
    assert 'would run' not in proc.stdout and '$ ' not in proc.stdout


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
    stamp = Path(sys.prefix) / '.mobileone_mm-setup'
    if not stamp.exists():
        pytest.skip('this environment was not set up by tools/setup_env.py')
    if stamp.read_text() != load(ROOT).inputs_hash():
        pytest.skip('set up from other inputs than these: a rerun would reinstall')
    env = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'CONDA_PREFIX')}
    if Path(sys.prefix).resolve() != (ROOT / '.venv').resolve():
        env['VIRTUAL_ENV'] = sys.prefix  # an activated environment of the user's
    proc = run_setup(env=env)
    assert proc.returncode == 0, proc.stderr
    assert 'environment ready' in proc.stdout
    assert 'pip' not in proc.stdout and 'mmcv' not in proc.stdout


def test_matching_stamp_changes_nothing_and_asks_nothing(tmp_path, project):
    prefix = user_env(tmp_path, {'numpy': '2.1.0'})
    (prefix / '.mobileone_mm-setup').write_text(load(project).inputs_hash())
    before = snapshot(prefix)
    proc = run_setup(env=activated(prefix), script=project / 'tools' / 'setup_env.py')
    assert proc.returncode == 0, proc.stderr
    assert 'environment ready' in proc.stdout
    assert 'pip' not in proc.stdout and 'would change' not in proc.stdout
    assert snapshot(prefix) == before


def test_changes_to_an_active_environment_need_consent(tmp_path, project):
    prefix = user_env(tmp_path, {'numpy': '2.1.0', 'setuptools': '75.1.0',
                                 'pip': '25.3'})
    before = snapshot(prefix)
    proc = run_setup(env=activated(prefix), script=project / 'tools' / 'setup_env.py')
    assert_refused(proc, f'{CONSENT}=1', f'make test {CONSENT}=1',
                   '--allow-env-changes', 'deactivate', '.venv/')
    listed = [line.strip() for line in proc.stdout.splitlines() if line.startswith('  ')]
    assert f"numpy 2.1.0 -> {pin('numpy')} (downgrade)" in listed
    assert f"setuptools 75.1.0 -> {pin('setuptools')} (downgrade)" in listed
    assert any(line.startswith('pip 25.3 -> pip>=23,<25.3 (downgrade') for line in listed)
    assert f"mmengine {pin('mmengine')} (install)" in listed
    assert f"scipy {pin('scipy')} (install)" in listed  # torchvision's extra, not torch's
    assert any(line.startswith('mobileone_mm (install, editable') for line in listed)
    names = {line.split()[0] for line in listed}
    assert not names & {'torch', 'torchvision', 'filelock', 'sympy', 'pillow',
                        'triton', 'mmcv'}  # torch's world is kept; mmcv works
    assert not any(name.startswith('nvidia-') for name in names)
    assert f'would change {len(listed)} package(s)' in proc.stdout
    assert snapshot(prefix) == before


@pytest.mark.parametrize('consent', ['flag', 'variable'])
def test_with_consent_setup_proceeds(tmp_path, project, consent):
    prefix = user_env(tmp_path, {'numpy': '2.1.0'})
    before = snapshot(prefix)
    args, extra = (['--allow-env-changes'], {}) if consent == 'flag' else ([], {CONSENT: '1'})
    proc = run_setup('--dry-run', *args, env=activated(prefix, **extra),
                     script=project / 'tools' / 'setup_env.py')
    assert proc.returncode == 0, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert f"numpy 2.1.0 -> {pin('numpy')} (downgrade)" in proc.stdout
    commands = [line.split('would run: ', 1)[1] for line in proc.stdout.splitlines()
                if 'would run: ' in line]
    python = str(prefix / 'bin' / 'python')
    assert commands[0].startswith(f'{python} -m pip install --progress-bar off -c ')
    assert commands[0].endswith('numpy ninja wheel setuptools')  # torch is kept
    assert any(f"-e '{project}[all,tests,docs]'" in cmd for cmd in commands)
    assert not any('pip>=23' in cmd for cmd in commands)  # its pip is fine: kept
    assert snapshot(prefix) == before


def test_without_consent_a_changed_nothing_is_still_refused(tmp_path, project):
    prefix = user_env(tmp_path, {'numpy': '2.1.0'})
    proc = run_setup(env=activated(prefix, **{CONSENT: '0'}),
                     script=project / 'tools' / 'setup_env.py')
    assert_refused(proc, f'{CONSENT}=1')


def test_makefile_passes_consent_on():
    if shutil.which('make') is None:
        pytest.skip('make is not installed')

    def setup_line(*args):
        return subprocess.run(['make', '-n', '-C', str(ROOT), 'setup', *args],
                              capture_output=True, text=True, check=True).stdout

    assert '--allow-env-changes' in setup_line(f'{CONSENT}=1')
    assert '--allow-env-changes' not in setup_line()
    assert '--allow-env-changes' not in setup_line(f'{CONSENT}=0')


def test_nothing_to_change_proceeds_silently(tmp_path, project):
    pins = load(project).env_pins(load(project).Env(
        Path('/nowhere'), (3, 11, 0), Path('/nowhere'), '', {}, external=False))
    dists = {name: version for key, (name, version) in pins.items()
             if not key.startswith(('nvidia-', 'torch', 'triton'))}
    dists.update(wheel='0.45.1', pip='24.0', mobileone_mm='0.1.0')
    prefix = user_env(tmp_path, dists)
    proc = run_setup('--dry-run', env=activated(prefix),
                     script=project / 'tools' / 'setup_env.py')
    assert proc.returncode == 0, proc.stderr
    assert 'would change' not in proc.stdout and 'error' not in proc.stderr
    assert 'would run: ' in proc.stdout
    assert 'mmcv 2.1.0 with ops: already installed and working' in proc.stdout


def test_unsupported_python_in_active_environment_is_refused(tmp_path, project):
    prefix = user_env(tmp_path, {'numpy': '2.1.0'}, python_version=(3, 10, 12))
    before = snapshot(prefix)
    proc = run_setup('--allow-env-changes', env=activated(prefix),
                     script=project / 'tools' / 'setup_env.py')
    assert_refused(proc, 'Python 3.10.12', 'needs Python 3.11', 'deactivate',
                   'PYTHON=python3.11')
    assert snapshot(prefix) == before


def test_unsupported_python_is_refused_before_creating_venv(project):
    script = project / 'tools' / 'setup_env.py'
    as_python_3_12 = (
        'import collections, runpy, sys; '
        "sys.version_info = collections.namedtuple('v', 'major minor micro "
        "releaselevel serial')(3, 12, 1, 'final', 0); "
        f'sys.argv = [{str(script)!r}]; '
        f"runpy.run_path({str(script)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, '-c', as_python_3_12], capture_output=True,
                          text=True, env=activated(), timeout=120)
    assert_refused(proc, 'Python 3.12.1', 'needs Python 3.11', 'PYTHON=python3.11')
    assert not (project / '.venv').exists()


@pytest.mark.parametrize('cxx', [None, '/nonexistent/g++'])
def test_missing_compiler_is_named_before_building_mmcv(tmp_path, project, cxx):
    prefix = user_env(tmp_path, {}, mmcv_works=False)  # mmcv must be built
    empty = tmp_path / 'no-compiler'
    empty.mkdir()
    env = activated(prefix, PATH=str(empty)) if cxx is None else activated(prefix, CXX=cxx)
    if cxx is None:
        env.pop('CXX', None)
    before = snapshot(prefix)
    proc = run_setup('--allow-env-changes', env=env,
                     script=project / 'tools' / 'setup_env.py')
    assert_refused(proc, 'needs a C++ compiler', 'apt install g++',
                   'no c++ or g++ on PATH' if cxx is None else f'$CXX={cxx} not found')
    assert snapshot(prefix) == before


def test_missing_python_headers_are_named(tmp_path, project, monkeypatch, capsys):
    module = load(project)  # no .venv/ there: it would be created from this Python
    monkeypatch.setattr(sysconfig, 'get_paths', lambda: {'include': str(tmp_path)})
    monkeypatch.setenv('CXX', str(fake_compiler(tmp_path)))
    for name in ('VIRTUAL_ENV', 'CONDA_PREFIX'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, 'argv', ['setup_env.py', '--dry-run'])  # installs nothing
    with pytest.raises(SystemExit) as stop:
        module.main()
    dev = 'python{}.{}-dev'.format(*sys.version_info[:2])
    assert str(stop.value) == (
        f'error: building mmcv 2.1.0 needs the Python headers (no Python.h in '
        f'{tmp_path}): install them (e.g. apt install {dev}) and run make again')
    assert not (project / '.venv').exists()
    assert 'would run' not in capsys.readouterr().out


def test_fresh_venv_gets_pip_that_keeps_setup_py_develop(tmp_path, project):
    if not (Path(sysconfig.get_paths()['include']) / 'Python.h').is_file():
        pytest.skip('this Python has no headers: setup would stop before the build')
    env = activated(CXX=str(fake_compiler(tmp_path)))
    proc = run_setup('--dry-run', env=env, script=project / 'tools' / 'setup_env.py')
    assert proc.returncode == 0, proc.stderr
    commands = [line.split('would run: ', 1)[1] for line in proc.stdout.splitlines()
                if 'would run: ' in line]
    venv_python = project / '.venv' / 'bin' / 'python'
    assert commands[0] == f'{sys.executable} -m venv {project / ".venv"}'
    assert commands[1] == f"{venv_python} -m pip install --progress-bar off 'pip>=23,<25.3'"
    assert 'torch torchvision' in commands[2]
    assert f"-c {project / 'requirements' / 'constraints.txt'}" in commands[2]
    assert not (project / '.venv').exists()


def test_torch_and_what_it_needs_stay_as_installed(project):
    module = load(project)
    dists = {
        'torch': ('2.5.1+cu121', ['sympy==1.13.1', 'nvidia-cublas-cu12==12.1.3.1']),
        'sympy': ('1.13.1', ['mpmath<1.4,>=1.1.0']),
        'mpmath': ('1.2.1', []),
        'nvidia-cublas-cu12': ('12.1.3.1', []),
        'torchvision': ('0.20.1+cu121', ['numpy', 'torch==2.5.1', 'scipy; extra == "scipy"']),
        'numpy': ('2.1.0', []),
    }
    env = module.Env(Path('/env/bin/python'), (3, 11, 7), Path('/env'), '/env/include',
                     dists, external=True)
    pins = module.env_pins(env)
    kept = {key: pins[key][1] for key in ('torch', 'torchvision', 'sympy', 'mpmath',
                                          'nvidia-cublas-cu12')}
    assert kept == {key: dists[key][0] for key in kept}
    assert not {'triton', 'nvidia-cudnn-cu12'} & set(pins)  # torch's, not installed
    assert pins['numpy'][1] == pin('numpy') and pins['scipy'][1] == pin('scipy')
    changes = module.planned_changes(env, pins, build_mmcv=True)
    assert f"numpy 2.1.0 -> {pin('numpy')} (downgrade)" in changes
    assert f"mmcv {pin('mmcv')} (install)" in changes
    assert not {line.split()[0] for line in changes} & set(kept)
