"""Resume, distributed launch and mim for the detection tools."""
import copy
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from mobileone_mm.engine.launch import train

from ..conftest import ROOT, subprocess_env
from .test_ssdlite import SHAPES_CFG, shapes_cfg, shapes_options


def _no_aug(options):
    # the demo pipeline's only random transform is RandomFlip (index 3)
    return options + ['train_dataloader.dataset.pipeline.3.prob=0.0',
                      'randomness.seed=0', 'randomness.deterministic=True']


def _weights(path):
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def test_resume_gives_the_same_weights_as_one_go(shapes_root, tmp_path):
    opts = _no_aug(shapes_options(shapes_root, epochs=2))
    from mmengine.config import DictAction
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)

    def options(*extra):
        return parser.parse_args(['--o', *opts, *extra]).o

    train(str(SHAPES_CFG), work_dir=str(tmp_path / 'once'), cfg_options=options())
    train(str(SHAPES_CFG), work_dir=str(tmp_path / 'split'),
          cfg_options=options('train_cfg.max_epochs=1'))
    assert not (tmp_path / 'split' / 'epoch_2.pth').exists()
    first = _weights(tmp_path / 'split' / 'epoch_1.pth')
    train(str(SHAPES_CFG), work_dir=str(tmp_path / 'split'), resume='auto',
          cfg_options=options())
    once = _weights(tmp_path / 'once' / 'epoch_2.pth')
    split = _weights(tmp_path / 'split' / 'epoch_2.pth')
    assert once.keys() == split.keys()
    moved = [k for k in once if once[k].is_floating_point()
             and not torch.equal(once[k], first[k])]
    assert moved, 'epoch 2 changed nothing: the comparison would be vacuous'
    for key in once:
        torch.testing.assert_close(split[key], once[key], rtol=1e-5, atol=1e-6,
                                   msg=key)


@HOOKS.register_module(force=True)
class StateProbe(Hook):
    """Records the runner's state when training (re)starts."""
    priority = 'LOWEST'
    seen = {}

    def before_train(self, runner):
        ema = [h for h in runner.hooks if type(h).__name__ == 'EMAHook'][0]
        StateProbe.seen = dict(
            epoch=runner.epoch, iter=runner.iter,
            optimizer=copy.deepcopy(runner.optim_wrapper.state_dict()),
            schedulers=copy.deepcopy([s.state_dict() for s in runner.param_schedulers]),
            lr=runner.optim_wrapper.get_lr()['lr'][0],
            ema={k: v.clone() for k, v in ema.ema_model.state_dict().items()})


def test_resume_restores_training_state_with_augmentation(shapes_root, tmp_path):
    cfg = shapes_cfg(shapes_root)
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='EMAHook', momentum=0.01)]
    cfg.work_dir = str(tmp_path)
    Runner.from_cfg(cfg.copy()).train()
    ckpt = torch.load(tmp_path / 'epoch_1.pth', map_location='cpu', weights_only=True)
    assert 'ema_state_dict' in ckpt and ckpt['meta']['epoch'] == 1

    cfg.train_cfg.max_epochs = 2
    cfg.resume = True
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='StateProbe')]
    Runner.from_cfg(cfg).train()
    seen = StateProbe.seen
    assert seen['epoch'] == 1 and seen['iter'] == ckpt['meta']['iter'] == 2
    saved_opt = ckpt['optimizer']['state']
    assert saved_opt, 'no optimizer state saved'
    for idx, state in saved_opt.items():
        # every per-parameter buffer (SGD's momentum_buffer, AdamW's step,
        # exp_avg and exp_avg_sq, ...)
        assert set(seen['optimizer']['state'][idx]) == set(state) and state
        for key, value in state.items():
            torch.testing.assert_close(seen['optimizer']['state'][idx][key], value)
    assert [s['last_step'] for s in seen['schedulers']] == \
        [s['last_step'] for s in ckpt['param_schedulers']]
    assert seen['lr'] == pytest.approx(ckpt['param_schedulers'][-1]['_last_value'][0])
    assert seen['lr'] == pytest.approx(ckpt['optimizer']['param_groups'][0]['lr'])
    # EMAHook saves the EMA weights as 'state_dict' and the source weights in
    # 'ema_state_dict' (swapped); resuming swaps them back into the EMA model.
    differs = 0
    for key, value in ckpt['ema_state_dict'].items():
        expected = ckpt['state_dict'][key[7:]] if key.startswith('module.') else value
        torch.testing.assert_close(seen['ema'][key], expected, msg=key)
        differs += key.startswith('module.') and not torch.equal(expected, value)
    assert differs, 'EMA weights equal the source weights: vacuous check'


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_torchrun_on_cpu(shapes_root, tmp_path):
    work = tmp_path / 'dist'
    cmd = ['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(SHAPES_CFG), '2',
           '--work-dir', str(work), '--cfg-options',
           *shapes_options(shapes_root), 'train_dataloader.batch_size=2']
    env = dict(subprocess_env(), PYTHON=sys.executable, PORT=str(_free_port()))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = next(work.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log
    assert 'CPUDistributedDataParallel' in log or 'Epoch(train)' in log
    # 8 images, 2 per process and step, 2 processes: 2 iterations per epoch
    assert 'Epoch(train) [1][2/2]' in log
    assert (work / 'epoch_1.pth').exists()


def test_mim_train_finds_tools_and_configs(shapes_root, tmp_path):
    mim = shutil.which('mim', path=str(ROOT / '.venv' / 'bin')) or shutil.which('mim')
    if mim is None:
        pytest.fail('openmim is not installed (it is in the tests extra)')
    work = tmp_path / 'mim'
    proc = subprocess.run(
        [mim, 'train', 'mobileone_mm', SHAPES_CFG.name, '--work-dir', str(work),
         '--cfg-options', *shapes_options(shapes_root)],
        capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(),
        timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (work / 'epoch_1.pth').exists()
