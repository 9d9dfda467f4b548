"""Hooks tools/train.py uses: evaluating the fused (deploy) model, and
stopping at a non-finite loss."""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mobileone_mm.deploy import reparameterize
from mobileone_mm.registry import HOOKS
from .checkpoints import diverged


@HOOKS.register_module()
class FusedEvalHook(Hook):
    """Validate/test the re-parameterized model instead of the training one.

    Before each validation/test epoch the runner's model is replaced by a
    fused deep copy (``mobileone_mm.reparameterize``) and restored afterwards,
    so training continues on the train-time branches. Priority ``LOW`` puts it
    after ``EMAHook``, so the copy is made from the EMA weights when EMA is on.
    """

    priority = 'LOW'

    def __init__(self, val: bool = True, test: bool = True) -> None:
        self.val = val
        self.test = test
        self._saved = None

    def _swap_in(self, runner) -> None:
        self._saved = runner.model
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        was_training = model.training
        model.eval()
        fused = reparameterize(model)
        model.train(was_training)
        runner.model = fused
        runner.logger.info('FusedEvalHook: evaluating the fused model')

    def _swap_out(self, runner) -> None:
        if self._saved is not None:
            runner.model = self._saved
            self._saved = None

    def before_val_epoch(self, runner) -> None:
        if self.val:
            self._swap_in(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._swap_out(runner)

    def before_test_epoch(self, runner) -> None:
        if self.test:
            self._swap_in(runner)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._swap_out(runner)


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first iteration whose loss is not finite (NaN or
    infinite), before any checkpoint of that state is written.

    A diverged run otherwise trains to the end, exits 0 and writes
    checkpoints of NaN weights (with ``max_keep_ckpts`` over the good ones).
    mmdet's ``CheckInvalidLossHook`` checks every 50 iterations, with an
    ``assert``, and only in mmdet; this one checks each iteration in every
    task and stops with one line naming the iteration and the last good
    checkpoint (``tools/train.py`` adds it). Priority ``ABOVE_NORMAL`` puts
    it before the checkpoint hook of the same iteration.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is None or bool(torch.isfinite(torch.as_tensor(loss)).all()):
            return
        raise diverged(f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})',
                       f'the loss is {float(loss)}',
                       runner.message_hub.get_info('last_ckpt'))
