"""The fusion checks can fail: with the shared fusion algebra broken on
purpose (``branch_kernel_bias`` without the 1x1 scale branch), every
comparison the fusion tests and the demo use reports a mismatch."""
import pytest
import torch

from mobileone_mm import reparameterize
from mobileone_mm.apis import build_model, load_config
from mobileone_mm.demos.common import PER_BRANCH
from mobileone_mm.deploy.compare import compare_models, forward_tensors
from mobileone_mm.models.backbones import fast_branches, mobileone_block
from mobileone_mm.models.backbones.fast_branches import per_branch
from mobileone_mm.utils.paths import config_path

from ..utils import fusion_check, randomize_bn
from .test_postprocess import TINY_ARCH


@pytest.fixture
def broken_algebra(monkeypatch):
    """``branch_kernel_bias`` forgets the scale branch, wherever it is used
    (the fused eval form of unfused blocks, and ``switch_to_deploy``)."""
    original = fast_branches.branch_kernel_bias

    def without_scale(block):
        scale = block.conv_scale
        block.conv_scale = None
        try:
            return original(block)
        finally:
            block.conv_scale = scale

    for module in (fast_branches, mobileone_block):
        monkeypatch.setattr(module, 'branch_kernel_bias', without_scale)


def tiny_detector():
    cfg = load_config(config_path('detection/ssdlite_mobileone_s0_shapes.py'))
    cfg.model.backbone.arch = TINY_ARCH
    levels = (16, 32, 16, 16, 8, 8)
    cfg.merge_from_dict({'model.neck.in_channels': levels[:2],
                         'model.neck.out_channels': levels,
                         'model.bbox_head.in_channels': levels})
    torch.manual_seed(0)
    return cfg, randomize_bn(build_model(cfg)).eval()


def test_the_fusion_checks_pass_with_the_real_algebra():
    _, model = tiny_detector()
    x = torch.rand(1, 3, 64, 64)
    assert fusion_check(model, reparameterize(model), x)['ok']


def test_a_broken_algebra_fails_the_shared_check(broken_algebra):
    _, model = tiny_detector()
    fused = reparameterize(model)
    x = torch.rand(1, 3, 64, 64)
    # what the tests compared before: the unfused eval form against the
    # fused copy, both the same (broken) algebra, agree
    for a, b in zip(forward_tensors(model, x), forward_tensors(fused, x)):
        torch.testing.assert_close(b, a, rtol=1e-4,
                                   atol=1e-4 * a.abs().max().item())
    # the shared check runs the unfused model branch by branch: it fails
    assert not fusion_check(model, fused, x)['ok']
    assert not compare_models(fused, model, x)['ok']  # the deploy tool's


def test_the_demos_unfused_evaluation_runs_every_branch(broken_algebra):
    """The demo evaluates the unfused model with PER_BRANCH: built so, its
    blocks run their branches, and its outputs differ from the (broken)
    fused model's, so the demo's "same mAP" compares two computations."""
    cfg, _ = tiny_detector()
    cfg.merge_from_dict(PER_BRANCH)
    torch.manual_seed(0)
    model = randomize_bn(build_model(cfg)).eval()
    blocks = [m for m in model.modules() if hasattr(m, 'branch_impl')]
    assert blocks and all(b.branch_impl == 'reference' for b in blocks)
    fused = reparameterize(model)
    x = torch.rand(1, 3, 64, 64)
    with per_branch(model):
        reference = forward_tensors(model, x)
    assert [torch.equal(r, o) for r, o in
            zip(reference, forward_tensors(model, x))] == [True] * len(
                reference)  # it already ran per branch
    differ = max(float((r - o).abs().max()) for r, o in
                 zip(reference, forward_tensors(fused, x)))
    assert differ > 1e-3
