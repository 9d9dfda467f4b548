"""FusedEvalHook: evaluation runs on a fused copy; training goes on with the
train-time branches."""
import logging

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS, MODEL_WRAPPERS

from mobileone_mm.engine import FusedEvalHook
from mobileone_mm.models import MobileOne

from ..utils import assert_fused_matches_branches, randomize_bn


class FakeRunner:
    """The two attributes the hook uses."""

    def __init__(self, model):
        self.model = model
        self.logger = logging.getLogger('test_hooks')


@MODEL_WRAPPERS.register_module(force=True)
class TestHooksWrapper(nn.Module):
    """A registered model wrapper (DDP's stand-in): the model is ``.module``."""
    __test__ = False

    def __init__(self, module):
        super().__init__()
        self.module = module


def tiny_net():
    arch = dict(num_blocks=(1, 1, 1, 1), widths=(8, 8, 16, 16),
                num_conv_branches=(2, 1, 1, 1), num_se_blocks=(0, 0, 0, 0))
    return MobileOne(arch)


def test_val_and_test_run_on_a_fused_copy(caplog):
    model = tiny_net().train()
    runner = FakeRunner(model)
    hook = FusedEvalHook()
    for before, after in ((hook.before_val_epoch, hook.after_val_epoch),
                          (hook.before_test_epoch, hook.after_test_epoch)):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger='test_hooks'):
            before(runner)
        assert 'FusedEvalHook: evaluating the fused model' in caplog.text
        fused = runner.model
        assert fused is not model and fused.is_fused and not fused.training
        assert not model.is_fused and model.training  # mode restored
        after(runner)
        assert runner.model is model
    assert hook.priority == 'LOW'  # after EMAHook (ABOVE_NORMAL)


def test_switched_off_phases_keep_the_training_model():
    model = tiny_net().eval()
    runner = FakeRunner(model)
    hook = FusedEvalHook(val=False, test=True)
    hook.before_val_epoch(runner)
    assert runner.model is model
    hook.after_val_epoch(runner)
    assert runner.model is model and not model.training
    hook.before_test_epoch(runner)
    assert runner.model is not model and runner.model.is_fused
    hook.after_test_epoch(runner)
    assert runner.model is model and not model.is_fused


def test_wrapped_model_is_unwrapped_and_restored():
    wrapped = TestHooksWrapper(tiny_net())
    assert is_model_wrapper(wrapped)
    runner = FakeRunner(wrapped)
    hook = FusedEvalHook()
    hook.before_val_epoch(runner)
    assert type(runner.model) is MobileOne and runner.model.is_fused
    hook.after_val_epoch(runner)
    assert runner.model is wrapped and not wrapped.module.is_fused


def test_builds_from_the_registry_and_predicts_as_the_unfused():
    hook = HOOKS.build(dict(type='mobileone_mm.FusedEvalHook', val=False))
    assert isinstance(hook, FusedEvalHook)
    assert (hook.val, hook.test) == (False, True)
    torch.manual_seed(0)
    model = randomize_bn(tiny_net()).eval()
    runner = FakeRunner(model)
    hook.before_test_epoch(runner)
    x = torch.rand(1, 3, 32, 32)
    assert_fused_matches_branches(model, runner.model, x)
