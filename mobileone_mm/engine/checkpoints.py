"""Checkpoints as tools/train.py and tools/test.py handle them: written
atomically, read as data (``weights_only=True``), and, for ``--resume``
without a path, the newest one that actually loads."""
import errno
import glob
import os
import os.path as osp
import re
import shutil
from typing import List, Optional, Tuple

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper

from mobileone_mm.checkpoint.fit import non_finite
from mobileone_mm.checkpoint.formats import ConversionError
from mobileone_mm.checkpoint.loaders import load_any
from mobileone_mm.registry import HOOKS
from mobileone_mm.utils.atomic import (remove_stale_partials, replacing,
                                       write_text)
from mobileone_mm.utils.errors import UserError, warn

__all__ = ['AtomicCheckpointHook', 'DiskFullError', 'diverged',
           'find_resume_checkpoint', 'read_checkpoint', 'replacing',
           'resume_candidates', 'save_atomically', 'write_text']

# The names mmengine's CheckpointHook gives by default (by epoch / by iter).
NUMBERED = re.compile(r'^(?:epoch|iter)_(\d+)\.pth$')
# What mmengine's Runner.resume reads besides the weights.
TRAINING_STATE = ('state_dict', 'meta', 'message_hub')


class DiskFullError(UserError):
    """A checkpoint could not be written: the disk (or quota) is full."""


def _disk_full(err: BaseException) -> bool:
    """Whether ``err`` says that nothing more fits on the disk: ``ENOSPC``/
    ``EDQUOT`` from Python's file writes, or the message of torch's zip
    writer (a RuntimeError without an errno)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC,
                                                  errno.EDQUOT):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        'No space left' in text or 'file write failed' in text
        or 'Disk quota' in text)


def _free(folder: str) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return 'unknown free space'
    return f'{free / 2**20:.1f} MiB free'


def save_atomically(runner, out_dir: str, filename: str, *args,
                    previous: Optional[str] = None, **kwargs) -> None:
    """``runner.save_checkpoint(out_dir, filename, ...)`` into a temporary
    file that is then renamed to ``filename``.

    Raises:
        DiskFullError: the disk filled up while writing; the temporary file
            is gone and ``filename`` untouched; the message names the folder,
            its free space and ``previous`` (the last good checkpoint).
    """
    path = osp.join(out_dir, filename)
    try:
        with replacing(path) as tmp:
            runner.save_checkpoint(out_dir, osp.relpath(tmp, out_dir), *args,
                                   **kwargs)
    except (OSError, RuntimeError) as err:
        if not _disk_full(err):
            raise
        kept = (f'the last good checkpoint {previous} and last_checkpoint are '
                f'intact' if previous else 'no earlier checkpoint exists')
        raise DiskFullError(
            f'no space left to write {path} ({_free(out_dir)} in '
            f'{osp.abspath(out_dir)}); training stopped and {kept}. Free '
            f'space, then continue with --resume') from err


class _AtomicSaves:
    """``runner`` as CheckpointHook's best-checkpoint code sees it: only
    ``save_checkpoint`` differs (it goes through :func:`save_atomically`)."""

    def __init__(self, runner) -> None:
        self.runner = runner

    def __getattr__(self, name: str):
        return getattr(self.runner, name)

    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs):
        save_atomically(self.runner, out_dir, filename, *args, **kwargs)


def diverged(where: str, what: str, last: Optional[str]) -> UserError:
    """The one message for a run that diverged (a non-finite loss, or
    non-finite weights about to be saved): where it stopped, what was not
    finite, the last good checkpoint and the fix."""
    kept = (f'the last good checkpoint is {last}' if last else
            'no checkpoint was written yet')
    return UserError(
        f'training stopped at {where}: {what}; no checkpoint of this state '
        f'was written and {kept}. Lower the learning rate '
        f'(optim_wrapper.optimizer.lr) or clip gradients '
        f'(optim_wrapper.clip_grad), then train again or --resume')


def _refuse_non_finite(runner, previous: Optional[str]) -> None:
    """Stop instead of saving weights that are NaN or infinite (a diverged
    run), so that they never replace a good checkpoint."""
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    bad = non_finite(model.state_dict())
    if bad:
        raise diverged(f'iteration {runner.iter}', f'{len(bad)} weights are '
                       f'not finite (first: {bad[0]})', previous)


class _DeferredRemovals:
    """The hook's file backend as mmengine's best-checkpoint code sees it:
    ``remove`` of a file is recorded (in ``removed``) instead of done, so
    the previous best stays until the new best is written."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.removed: List[str] = []

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    def remove(self, path: str) -> None:
        self.removed.append(path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same options) whose files are complete
    or absent, never truncated.

    mmengine writes ``epoch_N.pth``/``iter_N.pth`` and ``best_*.pth`` in
    place, rewrites ``last_checkpoint`` in place, and with
    ``max_keep_ckpts`` deletes the oldest checkpoint *before* writing the
    new one: a kill at the wrong moment leaves a truncated newest file, an
    empty ``last_checkpoint`` or no checkpoint at all. Here each file is
    written under a temporary name in its folder and renamed into place
    (:func:`replacing`), and the oldest checkpoint is deleted only after the
    new one and ``last_checkpoint`` are in place. For ``best_*.pth``,
    where mmengine removes the previous best before writing the new one,
    the removal is held back until the new best is written.
    ``.NAME.partial`` files that a kill left behind are removed when
    training starts and before each save, and a save that fills the disk
    stops training with one line (:class:`DiskFullError`).

    Why a subclass that ``launch.train`` puts in the config's place of
    ``CheckpointHook`` rather than a patch of mmengine's ``save_checkpoint``:
    every run through tools/train.py gets it, nothing changes for other
    runners in the process or for users' own scripts, and only the method
    that orders these writes is replaced; the record of kept checkpoints
    (``keep_ckpt_ids`` in the message hub) is mmengine's, so a run can resume
    across both hooks. Remote storage keeps mmengine's writes (a rename
    needs a local folder), as do files published after training
    (``published_keys``), whose source checkpoint is already complete.
    """

    def _local(self) -> bool:
        return is_main_process() and isinstance(self.file_backend,
                                                LocalBackend)

    def _clean(self, runner) -> None:
        """Remove the ``.NAME.partial`` files an earlier kill left behind in
        the checkpoint folder and the work dir (only those)."""
        for folder in {self.out_dir, runner.work_dir}:
            for path in remove_stale_partials(folder):
                warn(f'removed {path}: an unfinished checkpoint write of an '
                     f'earlier, killed run')

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._local():
            self._clean(runner)

    def _rotate(self, runner, step: int) -> Optional[str]:
        """mmengine's ``max_keep_ckpts`` bookkeeping, returning the file to
        delete instead of deleting it before the new one exists."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids
                                        and self.keep_ckpt_ids[-1] == step):
            return None
        outdated = None
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            outdated = osp.join(self.out_dir, self.filename_tmpl.format(
                self.keep_ckpt_ids.popleft()))
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids',
                                       list(self.keep_ckpt_ids))
        return outdated

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        runner = runner.runner if isinstance(runner, _AtomicSaves) else runner
        if not self._local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        self._clean(runner)
        previous = getattr(self, 'last_ckpt', None)
        _refuse_non_finite(runner, previous)
        outdated = self._rotate(runner, step)
        self.last_ckpt = osp.join(self.out_dir, self.filename_tmpl.format(step))
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        save_atomically(
            runner, self.out_dir, self.filename_tmpl.format(step),
            self.file_client_args, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args,
            previous=previous, **self.args)
        write_text(osp.join(runner.work_dir, 'last_checkpoint'),
                   self.last_ckpt)
        if outdated is not None and osp.isfile(outdated):
            os.remove(outdated)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self._local():
            return super()._save_best_checkpoint(runner, metrics)
        backend = self.file_backend
        self.file_backend = deferred = _DeferredRemovals(backend)
        try:
            super()._save_best_checkpoint(_AtomicSaves(runner), metrics)
        finally:
            self.file_backend = backend
        # the new best is in place: only now the previous best goes (unless
        # the new one has its name and replaced it)
        best = {getattr(self, 'best_ckpt_path', None),
                *(getattr(self, 'best_ckpt_path_dict', None) or {}).values()}
        for path in deferred.removed:
            if path not in best and osp.isfile(path):
                os.remove(path)


def _read(path: str, resume: bool) -> Tuple[Optional[dict], str, str]:
    """The checkpoint, or ``None``, what is wrong with the file and the fix."""
    other = 'use another checkpoint' + (
        ' (--resume without a path takes the newest one that loads)'
        if resume else '')
    try:
        checkpoint = load_any(path)
    except ConversionError as err:
        cause = err.__context__
        if cause is not None and 'GLOBAL' not in str(cause):
            return None, (f'cannot be read ({type(cause).__name__}): the file '
                          f'is truncated (an interrupted write?) or not a '
                          f'PyTorch checkpoint'), other
        # weights_only refused code (load_file names it), or no such file
        reason = str(err)
        return None, reason[len(path) + 2:] if reason.startswith(
            path) else reason, other
    if not isinstance(checkpoint, dict):
        return None, (f'not a checkpoint (it holds a '
                      f'{type(checkpoint).__name__}, not a dict)'), other
    lacking = [k for k in TRAINING_STATE if k not in checkpoint]
    if resume and lacking:
        return None, (f'no training state ({", ".join(lacking)} missing), '
                      f'so training cannot resume from it'), (
                          f'fine-tune from its weights with --cfg-options '
                          f'load_from={path} instead of --resume')
    return checkpoint, '', ''


def read_checkpoint(path: str, resume: bool = False) -> dict:
    """The whole checkpoint at ``path``, read as data (``weights_only=True``
    with the package's allow-list of mmengine's types).

    Raises:
        UserError: the file is missing, unreadable (truncated, not a
            PyTorch file) or, with ``resume``, lacks the training state.
    """
    checkpoint, problem, fix = _read(path, resume)
    if checkpoint is None:
        raise UserError(f'{path}: {problem}; {fix}')
    return checkpoint


def _named_by_record(work_dir: str) -> Optional[str]:
    """The file ``work_dir/last_checkpoint`` names, or ``None``. A file of
    that name in ``work_dir`` itself wins (the record holds the path the
    checkpoint was written to, which for a moved or copied work dir is the
    old folder)."""
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        named = f.read().strip()
    if not named:
        warn(f'{record} is empty; looking for epoch_*/iter_*.pth instead')
        return None
    here = osp.join(work_dir, osp.basename(named))
    return here if osp.isfile(here) else named


def resume_candidates(work_dir: str) -> List[str]:
    """What ``--resume`` may resume from, newest first: the file named by
    ``last_checkpoint``, then ``epoch_N.pth``/``iter_N.pth`` by N.

    Example:
        >>> import tempfile
        >>> work = tempfile.mkdtemp()
        >>> for name in ('epoch_2.pth', 'epoch_10.pth', 'best.pth'):
        ...     open(osp.join(work, name), 'wb').close()
        >>> [osp.basename(p) for p in resume_candidates(work)]
        ['epoch_10.pth', 'epoch_2.pth']
    """
    numbered = [p for p in glob.glob(osp.join(glob.escape(work_dir), '*'))
                if NUMBERED.match(osp.basename(p)) and osp.isfile(p)]
    numbered.sort(key=lambda p: int(NUMBERED.match(osp.basename(p))[1]),
                  reverse=True)
    named = _named_by_record(work_dir)
    if named is None:
        return numbered
    same = osp.realpath(named)
    return [named] + [p for p in numbered if osp.realpath(p) != same]


def find_resume_checkpoint(work_dir: str) -> Optional[Tuple[str, dict]]:
    """The newest checkpoint in ``work_dir`` that loads, and its content.

    Each file that does not load gets one warning line naming it.

    Returns:
        ``(path, checkpoint)``, or ``None`` when ``work_dir`` holds no
        checkpoint at all (a first run: training starts from scratch).

    Raises:
        UserError: there are checkpoints but none of them loads (training
            from scratch would rotate them away; the message says what to do).
    """
    skipped = []
    for path in resume_candidates(work_dir):
        if not osp.isfile(path):
            warn(f'--resume: skipping {path} (named by last_checkpoint): no '
                 f'such file')
            continue
        checkpoint, problem, _ = _read(path, resume=True)
        if checkpoint is not None:
            return path, checkpoint
        warn(f'--resume: skipping {path}: {problem}')
        skipped.append(path)
    if not skipped:
        return None
    raise UserError(
        f'--resume: no checkpoint in {work_dir} loads (skipped '
        f'{", ".join(osp.basename(p) for p in skipped)}); resume from a good '
        f'copy with --resume PATH, or move these files out of the work dir '
        f'to train from scratch')
