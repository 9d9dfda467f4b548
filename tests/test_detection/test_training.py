"""Resume, distributed launch and mim for the detection tools."""
import copy
import json
import os
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


def _probe_config(tmp_path):
    """The demo config plus tests/test_detection/dist_probe.py's hook, loaded
    by tools/train.py itself (``custom_imports``)."""
    path = tmp_path / 'probe_cfg.py'
    path.write_text(
        f'_base_ = [{str(SHAPES_CFG)!r}]\n'
        "custom_imports = dict(imports=['tests.test_detection.dist_probe'],\n"
        "                      allow_failed_imports=False)\n"
        "custom_hooks = _base_.custom_hooks + [dict(type='DistProbeHook')]\n")
    return path


def test_dist_train_two_cpu_processes_is_data_parallel(shapes_root, tmp_path):
    # Two gloo processes through tools/dist_train.sh: each rank records its
    # wrapper, the world size, a digest of its parameters after every step
    # and the images it trained on. Data parallel means: disjoint shards
    # (DefaultSampler) covering the epoch, yet bit-identical parameters on
    # both ranks after each step (DDP averages the gradients).
    from mobileone_mm.engine.cpu_dist import CPUDistributedDataParallel
    work = tmp_path / 'dist'
    cmd = ['bash', str(ROOT / 'tools' / 'dist_train.sh'),
           str(_probe_config(tmp_path)), '2', '--work-dir', str(work),
           '--cfg-options', *shapes_options(shapes_root),
           'train_dataloader.batch_size=2']
    env = dict(subprocess_env(), PYTHON=sys.executable, PORT=str(_free_port()),
               PYTHONPATH=os.pathsep.join(
                   [str(ROOT)] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = next(work.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log
    ranks = [json.loads((work / f'probe_rank{r}.json').read_text()) for r in (0, 1)]
    wrapper = f'{CPUDistributedDataParallel.__module__}.' \
              f'{CPUDistributedDataParallel.__qualname__}'
    for rank, record in enumerate(ranks):
        assert record['rank'] == rank and record['world_size'] == 2
        assert record['wrapper'] == wrapper
    # 8 images, 2 per process and step, 2 processes: 2 iterations per epoch
    steps = [record['steps'] for record in ranks]
    assert len(steps[0]) == len(steps[1]) == 2
    seen = [{i for step in rank_steps for i in step['img_ids']} for rank_steps in steps]
    assert len(seen[0]) == len(seen[1]) == 4 and not seen[0] & seen[1]
    ann = json.loads((shapes_root / 'annotations' / 'instances_train.json').read_text())
    assert seen[0] | seen[1] == {img['id'] for img in ann['images']}
    assert ranks[0]['initial'] == ranks[1]['initial']
    digests = [[step['params'] for step in rank_steps] for rank_steps in steps]
    assert digests[0] == digests[1]
    assert len({ranks[0]['initial'], *digests[0]}) == 3, 'a step changed nothing'
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
