"""Hooks for evaluating the fused (deploy) model."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mobileone_mm.deploy import reparameterize
from mobileone_mm.registry import HOOKS


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
