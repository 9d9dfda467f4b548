"""The launchers OpenMMLab users expect: tools/dist_train.sh,
tools/dist_test.sh (torchrun), tools/slurm_train.sh, tools/slurm_test.sh
(srun + mmengine's slurm launcher). Their argument handling is checked with
stand-ins that print what they were called with: ``PYTHON`` for torchrun's
interpreter and an ``srun`` first on ``PATH``. (A real two-process run of
dist_train.sh is in tests/test_detection/test_training.py.)
"""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / 'tools'


@pytest.fixture
def stand_ins(tmp_path):
    """A ``python`` and an ``srun`` that print their arguments one per line
    (srun also the MASTER_PORT it sees) and exit 0."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, extra in (('python', ''), ('srun', 'echo "MASTER_PORT=$MASTER_PORT"\n')):
        script = bin_dir / name
        script.write_text(f'#!/usr/bin/env bash\n{extra}for a in "$@"; do echo "$a"; done\n')
        script.chmod(0o755)
    return bin_dir


def launch(script, *args, env=None, bin_dir=None):
    full_env = {k: v for k, v in os.environ.items()
                if k not in ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'PORT', 'GPUS',
                             'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS', 'PYTHON')}
    if bin_dir is not None:
        full_env['PATH'] = f'{bin_dir}{os.pathsep}{full_env["PATH"]}'
        full_env['PYTHON'] = str(bin_dir / 'python')
    full_env.update(env or {})
    return subprocess.run(['bash', str(TOOLS / script), *args], capture_output=True,
                          text=True, env=full_env, timeout=60)


def test_dist_train_builds_torchrun_command(stand_ins):
    out = launch('dist_train.sh', 'configs/detection/ssdlite_mobileone_s2.py', '4',
                 '--work-dir', 'w d', '--resume', bin_dir=stand_ins)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split('\n')[:-1] == [
        '-m', 'torch.distributed.run', '--nnodes=1', '--node_rank=0',
        '--master_addr=127.0.0.1', '--master_port=29500', '--nproc_per_node=4',
        str(TOOLS / 'train.py'), 'configs/detection/ssdlite_mobileone_s2.py',
        '--launcher', 'pytorch', '--work-dir', 'w d', '--resume']


def test_dist_train_several_nodes_from_the_environment(stand_ins):
    out = launch('dist_train.sh', 'cfg.py', '8', bin_dir=stand_ins,
                 env=dict(NNODES='2', NODE_RANK='1', MASTER_ADDR='10.1.1.1', PORT='29600'))
    assert out.returncode == 0, out.stderr
    args = out.stdout.split('\n')
    assert {'--nnodes=2', '--node_rank=1', '--master_addr=10.1.1.1',
            '--master_port=29600', '--nproc_per_node=8'} <= set(args)


def test_dist_test_builds_torchrun_command(stand_ins):
    out = launch('dist_test.sh', 'cfg.py', 'ckpt.pth', '2', '--deploy', bin_dir=stand_ins)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split('\n')[:-1] == [
        '-m', 'torch.distributed.run', '--nnodes=1', '--node_rank=0',
        '--master_addr=127.0.0.1', '--master_port=29500', '--nproc_per_node=2',
        str(TOOLS / 'test.py'), 'cfg.py', 'ckpt.pth', '--launcher', 'pytorch', '--deploy']


def test_slurm_train_builds_srun_command(stand_ins):
    out = launch('slurm_train.sh', 'gpu', 'job 1', 'cfg.py', 'work', '--resume',
                 bin_dir=stand_ins, env=dict(GPUS='16', SRUN_ARGS='--time=1:00:00 --quotatype=auto',
                                             PORT='29700'))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split('\n')[:-1] == [
        'MASTER_PORT=29700', '-p', 'gpu', '--job-name=job 1', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        '--time=1:00:00', '--quotatype=auto', str(stand_ins / 'python'), '-u',
        str(TOOLS / 'train.py'), 'cfg.py', '--work-dir=work', '--launcher=slurm', '--resume']


def test_slurm_test_defaults(stand_ins):
    out = launch('slurm_test.sh', 'gpu', 'j', 'cfg.py', 'ckpt.pth', bin_dir=stand_ins,
                 env=dict(GPUS='4'))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split('\n')[:-1] == [
        'MASTER_PORT=29500', '-p', 'gpu', '--job-name=j', '--gres=gpu:4', '--ntasks=4',
        '--ntasks-per-node=4', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        str(stand_ins / 'python'), '-u', str(TOOLS / 'test.py'), 'cfg.py', 'ckpt.pth',
        '--launcher=slurm']


@pytest.mark.parametrize('script, args, env, says', [
    ('dist_train.sh', [], {}, 'CONFIG and NUM_PROCS are required'),
    ('dist_train.sh', ['cfg.py'], {}, 'CONFIG and NUM_PROCS are required'),
    ('dist_train.sh', ['cfg.py', 'two'], {}, "NUM_PROCS must be a positive whole number (processes on this node), got 'two'"),
    ('dist_train.sh', ['cfg.py', '0'], {}, "got '0'"),
    ('dist_test.sh', ['cfg.py', '2'], {}, 'CONFIG, CHECKPOINT and NUM_PROCS are required'),
    ('dist_test.sh', ['cfg.py', 'ckpt.pth', '-1'], {}, "got '-1'"),
    ('slurm_train.sh', ['gpu', 'job', 'cfg.py'], {}, 'PARTITION, JOB_NAME, CONFIG and WORK_DIR are required'),
    ('slurm_train.sh', ['gpu', 'job', 'cfg.py', 'w'], {'GPUS': 'eight'}, "GPUS must be a positive whole number, got 'eight'"),
    ('slurm_test.sh', ['gpu', 'job', 'cfg.py'], {}, 'PARTITION, JOB_NAME, CONFIG and CHECKPOINT are required'),
    ('slurm_test.sh', ['gpu', 'job', 'cfg.py', 'c.pth'], {'CPUS_PER_TASK': '0'}, "CPUS_PER_TASK must be a positive whole number, got '0'"),
])
def test_bad_arguments_stop_with_usage(stand_ins, script, args, env, says):
    out = launch(script, *args, env=env, bin_dir=stand_ins)
    assert out.returncode == 2
    assert out.stdout == ''  # nothing was launched
    assert out.stderr.startswith('error: ') and says in out.stderr
    if 'required' in says or 'NUM_PROCS' in says:
        assert f'usage: tools/{script}' in out.stderr


def test_launchers_are_executable():
    for name in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh', 'slurm_test.sh'):
        assert os.access(TOOLS / name, os.X_OK), name
