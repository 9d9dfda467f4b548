"""torch >= 2.6 loads with weights_only=True; mmengine checkpoints must load
and resume through an allow-list, not a blanket weights_only=False."""
import pickle
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch.utils.data import Dataset

import mobileone_mm  # noqa: F401  (applies the fix)


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x, y, mode='loss'):
        x = torch.stack(x) if isinstance(x, list) else x
        y = torch.stack(y) if isinstance(y, list) else y
        loss = ((self.linear(x) - y)**2).mean()
        return dict(loss=loss) if mode == 'loss' else [loss]


class ToyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(x=torch.randn(4, generator=g), y=torch.randn(1, generator=g))


def make_runner(work_dir, max_iters, resume=False):
    return Runner(
        model=ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyData(), batch_size=2,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[3], by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2,
                                           by_epoch=False)),
        custom_hooks=[dict(type='EMAHook')],
        randomness=dict(seed=0), resume=resume, default_scope='mmengine')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('toy')
    make_runner(work_dir, 2).train()
    return work_dir


def test_runner_checkpoint_needs_the_allow_list(trained):
    ckpt = trained / 'iter_2.pth'
    code = (f'import torch; torch.load({str(ckpt)!r}, weights_only=True)')
    bare = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True)
    assert bare.returncode != 0 and 'weights_only' in bare.stderr
    loaded = torch.load(ckpt, weights_only=True)
    assert loaded['meta']['iter'] == 2 and 'message_hub' in loaded


def test_load_checkpoint_and_resume(trained):
    model = ToyModel()
    load_checkpoint(model, str(trained / 'iter_2.pth'))
    runner = make_runner(trained, 4, resume=True)
    runner.train()
    assert runner.iter == 4
    assert (trained / 'iter_4.pth').exists()
    log = (trained / 'last_checkpoint').read_text()
    assert log.strip().endswith('iter_4.pth')


class Arbitrary:

    def __reduce__(self):
        return (print, ('code ran',))


class GetattrEscape:
    # a blanket getattr allow-list would hand out HistoryBuffer.__init__
    # (and from there its __globals__)
    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


def test_allow_list_is_not_blanket(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': Arbitrary()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    torch.save({'x': GetattrEscape()}, path)
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        torch.load(path, weights_only=True)
