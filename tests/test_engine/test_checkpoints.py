"""mobileone_mm.engine.checkpoints: atomic writes, the atomic checkpoint
hook (also under SIGKILL mid-write), reading as data, and the newest
checkpoint that loads for ``--resume``."""
import logging
import os
import pathlib
import signal
import subprocess
import sys
from collections import deque

import pytest
import torch
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub

from mobileone_mm.engine.checkpoints import (AtomicCheckpointHook,
                                             find_resume_checkpoint,
                                             read_checkpoint, replacing,
                                             resume_candidates)
from mobileone_mm.utils.errors import UserError

from ..conftest import ROOT, subprocess_env


def test_replacing_leaves_the_old_file_until_the_new_one_is_complete(tmp_path):
    path = tmp_path / 'f.txt'
    path.write_text('old')
    with pytest.raises(RuntimeError):
        with replacing(str(path)) as tmp:
            pathlib.Path(tmp).write_text('half')
            assert path.read_text() == 'old'
            raise RuntimeError('killed mid-write')
    assert path.read_text() == 'old'
    assert os.listdir(tmp_path) == ['f.txt']  # the temporary file is gone
    with replacing(str(path)) as tmp:
        pathlib.Path(tmp).write_text('new')
    assert path.read_text() == 'new' and os.listdir(tmp_path) == ['f.txt']


class FakeRunner:
    """What CheckpointHook's saving code uses of a runner."""

    def __init__(self, work_dir, crash_at=None):
        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance(f'ckpt-{id(self)}')
        self.crash_at, self.saved_as = crash_at, []
        self.model, self.iter = torch.nn.Linear(1, 1), 0

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        self.saved_as.append(filename)
        with open(os.path.join(out_dir, filename), 'wb') as f:
            f.write(b'x' * 1000)
            if kwargs['meta']['epoch'] == self.crash_at:
                f.flush()
                raise KeyboardInterrupt  # stands for a kill mid-write


def make_hook(work_dir, hook_type=AtomicCheckpointHook, max_keep=1, **kwargs):
    hook = hook_type(interval=1, max_keep_ckpts=max_keep, **kwargs)
    hook.out_dir, hook.file_backend = str(work_dir), LocalBackend()
    hook.keep_ckpt_ids = deque(maxlen=max_keep)
    return hook


def test_hook_writes_under_temporary_names_and_rotates_after(tmp_path):
    runner, hook = FakeRunner(tmp_path, crash_at=3), make_hook(tmp_path)
    record = tmp_path / 'last_checkpoint'
    hook._save_checkpoint_with_step(runner, 1, dict(epoch=1))
    inode = record.stat().st_ino
    hook._save_checkpoint_with_step(runner, 2, dict(epoch=2))
    assert sorted(os.listdir(tmp_path)) == ['epoch_2.pth', 'last_checkpoint']
    assert record.read_text() == str(tmp_path / 'epoch_2.pth')
    assert record.stat().st_ino != inode  # replaced, not rewritten in place
    assert 'epoch_2.pth' not in runner.saved_as  # written under another name
    assert runner.message_hub.get_info('keep_ckpt_ids') == [2]
    with pytest.raises(KeyboardInterrupt):
        hook._save_checkpoint_with_step(runner, 3, dict(epoch=3))
    # the crash left the previous checkpoint and its record as they were
    assert sorted(os.listdir(tmp_path)) == ['epoch_2.pth', 'last_checkpoint']
    assert record.read_text() == str(tmp_path / 'epoch_2.pth')


KILLED_SAVE = """
import os, signal, sys
from collections import deque
import torch
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub
from mobileone_mm.engine.checkpoints import AtomicCheckpointHook

work = sys.argv[2]
class Runner:
    work_dir, iter = work, 0
    model = torch.nn.Linear(1, 1)
    message_hub = MessageHub.get_instance('killed')
    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        with open(os.path.join(out_dir, filename), 'wb') as f:
            f.write(b'x' * 1000)
            if kwargs['meta']['epoch'] == 2:
                f.write(b'y' * 500)
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
hook = {'atomic': AtomicCheckpointHook, 'mmengine': CheckpointHook}[sys.argv[1]](
    interval=1, max_keep_ckpts=1)
hook.out_dir, hook.file_backend = work, LocalBackend()
hook.keep_ckpt_ids = deque(maxlen=1)
for epoch in (1, 2):
    hook._save_checkpoint_with_step(Runner(), epoch, dict(epoch=epoch))
"""


@pytest.mark.parametrize('hook', ['atomic', 'mmengine'])
def test_sigkill_mid_write(hook, tmp_path):
    proc = subprocess.run([sys.executable, '-c', KILLED_SAVE, hook, str(tmp_path)],
                          capture_output=True, text=True, env=subprocess_env(),
                          cwd=ROOT, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    record = (tmp_path / 'last_checkpoint').read_text()
    if hook == 'atomic':  # the newest complete checkpoint survives, named
        assert record == str(tmp_path / 'epoch_1.pth')
        assert (tmp_path / 'epoch_1.pth').stat().st_size == 1000
        # the kill left the unfinished write under its temporary name ...
        assert sorted(os.listdir(tmp_path)) == [
            '.epoch_2.pth.partial', 'epoch_1.pth', 'last_checkpoint']
        (tmp_path / 'notes.partial').write_text('a user file')
        # ... which the next save removes, and nothing else
        runner, again = FakeRunner(tmp_path), make_hook(tmp_path)
        again._save_checkpoint_with_step(runner, 3, dict(epoch=3))
        assert sorted(os.listdir(tmp_path)) == [
            'epoch_1.pth', 'epoch_3.pth', 'last_checkpoint', 'notes.partial']
    else:  # what the atomic hook prevents: the kept one deleted first, the
        # new one truncated
        assert not (tmp_path / 'epoch_1.pth').exists()
        assert (tmp_path / 'epoch_2.pth').stat().st_size == 1500


def test_stale_partials_go_when_training_starts(tmp_path, capsys):
    (tmp_path / '.epoch_4.pth.partial').write_bytes(b'x' * 10)
    (tmp_path / '.last_checkpoint.partial').write_text('half')
    (tmp_path / 'epoch_3.pth').write_bytes(b'y')
    runner, hook = FakeRunner(tmp_path), make_hook(tmp_path)
    hook._clean(runner)
    assert sorted(os.listdir(tmp_path)) == ['epoch_3.pth']
    err = capsys.readouterr().err
    assert f'warning: removed {tmp_path}/.epoch_4.pth.partial: an unfinished' \
           in err and '.last_checkpoint.partial' in err


class BestRunner(FakeRunner):
    """FakeRunner with what the best-checkpoint code reads; each save notes
    the checkpoint files that exist while it writes."""

    def __init__(self, work_dir):
        super().__init__(work_dir)
        self.epoch, self.iter, self.during = 0, 0, []
        self.logger = logging.getLogger('best-test')

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        self.during.append(sorted(p for p in os.listdir(out_dir)
                                  if p.startswith('best_')))
        super().save_checkpoint(out_dir, filename, *args, **kwargs)


@pytest.mark.parametrize('hook_type', [AtomicCheckpointHook, CheckpointHook])
def test_new_best_is_written_before_the_old_best_goes(hook_type, tmp_path):
    runner = BestRunner(tmp_path)
    hook = make_hook(tmp_path, hook_type, save_best='acc', rule='greater')
    hook._init_rule(hook.rules, hook.key_indicators)
    hook.best_ckpt_path, hook.last_ckpt = None, None
    for epoch, acc in ((1, 0.5), (2, 0.7)):
        runner.epoch = epoch
        hook._save_best_checkpoint(runner, {'acc': acc})
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith('best_')) \
        == ['best_acc_epoch_2.pth']
    if hook_type is AtomicCheckpointHook:  # the old best existed meanwhile
        assert runner.during == [[], ['best_acc_epoch_1.pth']]
    else:  # mmengine deletes it first: a crash then leaves no best at all
        assert runner.during == [[], []]


def save(path, training=True, **state):
    ckpt = dict(state_dict=state or dict(w=torch.zeros(2)))
    if training:
        ckpt.update(meta=dict(epoch=1, iter=2), message_hub={})
    torch.save(ckpt, path)


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def test_resume_candidates_order(tmp_path, capsys):
    for name in ('epoch_3.pth', 'epoch_12.pth', 'iter_5.pth', 'best_x.pth',
                 'epoch_x.pth'):
        (tmp_path / name).write_bytes(b'')
    names = lambda: [os.path.basename(p) for p in resume_candidates(str(tmp_path))]
    assert names() == ['epoch_12.pth', 'iter_5.pth', 'epoch_3.pth']
    # last_checkpoint first; a copied work dir: the file of that name here
    (tmp_path / 'last_checkpoint').write_text('/elsewhere/epoch_3.pth\n')
    assert resume_candidates(str(tmp_path))[0] == str(tmp_path / 'epoch_3.pth')
    assert names() == ['epoch_3.pth', 'epoch_12.pth', 'iter_5.pth']
    (tmp_path / 'last_checkpoint').write_text('/elsewhere/custom.pth')
    assert resume_candidates(str(tmp_path))[0] == '/elsewhere/custom.pth'
    (tmp_path / 'last_checkpoint').write_text('')
    assert names() == ['epoch_12.pth', 'iter_5.pth', 'epoch_3.pth']
    assert 'last_checkpoint is empty' in capsys.readouterr().err


def test_resume_skips_truncated_and_names_them(tmp_path, capsys):
    for epoch in (1, 2, 3):
        save(tmp_path / f'epoch_{epoch}.pth', w=torch.full((2, ), float(epoch)))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    truncate(tmp_path / 'epoch_3.pth')
    save(tmp_path / 'epoch_2.pth', training=False)  # weights only
    path, ckpt = find_resume_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'epoch_1.pth')
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f'warning: --resume: skipping {tmp_path}/epoch_3.pth: ')
    assert 'truncated' in lines[0]
    assert lines[1].startswith(f'warning: --resume: skipping {tmp_path}/epoch_2.pth: ')
    assert 'no training state (meta, message_hub missing)' in lines[1]


def test_resume_with_nothing_or_nothing_good(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) is None  # a first run
    save(tmp_path / 'iter_4.pth')
    truncate(tmp_path / 'iter_4.pth')
    with pytest.raises(UserError, match=r'no checkpoint in .* loads \(skipped '
                       r'iter_4.pth\); resume from a good copy with --resume PATH'):
        find_resume_checkpoint(str(tmp_path))


def test_read_checkpoint_is_data_only(tmp_path):
    marker = tmp_path / 'ran'

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker, ))

    torch.save(dict(state_dict={}, x=Payload()), tmp_path / 'code.pth')
    with pytest.raises(UserError, match='which is code, not data'):
        read_checkpoint(str(tmp_path / 'code.pth'))
    assert not marker.exists()
    save(tmp_path / 'ok.pth')
    assert read_checkpoint(str(tmp_path / 'ok.pth'), resume=True)['meta'] == \
        dict(epoch=1, iter=2)
    save(tmp_path / 'weights.pth', training=False)
    with pytest.raises(UserError, match='load_from=.*weights.pth instead of --resume'):
        read_checkpoint(str(tmp_path / 'weights.pth'), resume=True)
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    with pytest.raises(UserError, match='truncated .* or not a PyTorch checkpoint; '
                       'use another checkpoint'):
        read_checkpoint(str(tmp_path / 'text.pth'))


def test_a_real_mmengine_checkpoint_reads_as_data(tmp_path):
    """Runner checkpoints hold numpy and HistoryBuffer objects; the package's
    allow-list must let weights_only read them."""
    hub = MessageHub.get_instance('real-ckpt')
    hub.update_scalar('train/loss', 1.5)
    save(tmp_path / 'epoch_1.pth', w=torch.zeros(1))
    ckpt = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)
    ckpt['message_hub'] = hub.state_dict()
    torch.save(ckpt, tmp_path / 'epoch_1.pth')
    assert 'log_scalars' in read_checkpoint(str(tmp_path / 'epoch_1.pth'),
                                            resume=True)['message_hub']


def test_hook_is_registered():
    from mmengine.registry import HOOKS
    from mobileone_mm.registry import HOOKS as OURS
    assert OURS.get('AtomicCheckpointHook') is AtomicCheckpointHook
    assert HOOKS.get('mobileone_mm.AtomicCheckpointHook') is AtomicCheckpointHook
    hook = HOOKS.build(dict(type='mobileone_mm.AtomicCheckpointHook', interval=2,
                            max_keep_ckpts=3))
    assert (hook.interval, hook.max_keep_ckpts) == (2, 3)
