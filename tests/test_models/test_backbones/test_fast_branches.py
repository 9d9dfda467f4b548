"""The fast branch formulations equal the per-branch one (ml-mobileone's).

Equality is checked in float64 with random BN statistics and affine
parameters: outputs, every parameter's gradient and every BN buffer after
training steps agree to 1e-10 relative (to the largest entry of each
reference tensor), which a wrong fold, a misplaced 1x1 tap or a missed
running-statistics update would break by many orders of magnitude.

One floor: a gradient is compared to 1e-10 of its largest entry or 1e-12 of
the largest gradient entry in the model, whichever is larger. The gradient
of a depthwise 1x1 "scale" weight is eps-small (the BN after it cancels the
weight's magnitude), so both formulations compute it as a difference of
terms the size of the other gradients, and its float64 rounding noise
(~1e-16 of those) is 1e-11 of its own size.

The depthwise scale weights get the model's largest gradient as their
floor (1e-10 of it). Through BN's backward, the per-branch form computes
their gradient as ``sum(g (x - m)) * eps / (w^2 v + eps)``, a difference of
two terms ``1 / (eps / (w^2 v + eps))`` times larger than the result; the
fast form differentiates ``w / sqrt(w^2 v + eps)`` directly and has no such
cancellation. Measured on one block (float64): fast vs per-branch 8.8e-13
relative, where the per-branch form against itself with its input changed
by 1e-15 moves 3.3e-13 (no other gradient moves more than 1.4e-15); in the
whole S0 after one step the largest such difference is 8.4e-10 (1.5e-11 of
the model's largest gradient), amplified by the BNs above it.
"""
import copy

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from mobileone_mm.checkpoint.formats import convert
from mobileone_mm.models import MobileOne
from mobileone_mm.models.backbones import fast_branches
from mobileone_mm.models.backbones.mobileone_block import MobileOneBlock
from tests.apple_reference import AppleMobileOne
from tests.utils import randomize_bn

RTOL = 1e-10
# A whole unfused backbone in eval mode against its on-the-fly fused form:
# the tolerance of the project's fused-vs-unfused checks. Without BN's
# per-layer renormalization, float64 rounding grows to ~1e-8 over 43 layers
# after a training step has moved the weights away from the statistics.
EVAL_RTOL = 1e-7


def assert_rel(actual, expected, rtol=RTOL, what='', floor=0.0):
    if not expected.is_floating_point():
        assert torch.equal(actual, expected), what
        return
    scale = max(expected.abs().max().item(), floor)
    err = (actual - expected).abs().max().item()
    assert err <= rtol * max(scale, 1e-300), f'{what}: {err} vs {scale}'


def set_impl(model: nn.Module, impl: str) -> nn.Module:
    for m in model.modules():
        if isinstance(m, MobileOneBlock):
            m.branch_impl = impl
    return model


def train_steps(model, x, steps=2, seed=0):
    """Forward, a loss with random weights, backward, SGD step; twice.
    Returns the outputs and gradients of the last step."""
    opt = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=1e-2,
        momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        opt.zero_grad()
        xi = x.clone().requires_grad_(True)
        outs = model(xi)
        outs = outs if isinstance(outs, (tuple, list)) else (outs, )
        # mean, not sum: steps of the same size at every input size
        loss = sum((o * torch.randn(o.shape, generator=gen,
                                    dtype=o.dtype)).mean() for o in outs)
        loss.backward()
        opt.step()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()
             if p.grad is not None}
    grads['input'] = xi.grad.clone()
    return [o.detach() for o in outs], grads


def check_same(fast, ref, x, steps=2, eval_rtol=RTOL):
    outs_f, grads_f = train_steps(fast, x, steps)
    outs_r, grads_r = train_steps(ref, x, steps)
    for of, o_r in zip(outs_f, outs_r):
        assert_rel(of, o_r, what='output')
    assert grads_f.keys() == grads_r.keys() and len(grads_r) > 1
    largest = max(g.abs().max().item() for g in grads_r.values())
    for name in grads_r:
        # the scale weights' floor: see the module docstring
        floor = largest * (1.0 if 'conv_scale.conv' in name else 1e-2)
        assert_rel(grads_f[name], grads_r[name], what=f'grad {name}',
                   floor=floor)
    buffers_r = dict(ref.named_buffers())
    for name, buf in fast.named_buffers():
        assert_rel(buf, buffers_r[name], what=f'buffer {name}')
    with torch.no_grad():  # and eval mode (fused kernel on the fly)
        for of, o_r in zip(_outs(fast.eval(), x), _outs(ref.eval(), x)):
            assert_rel(of, o_r, rtol=eval_rtol, what='eval output')


def _outs(model, x):
    outs = model(x)
    return outs if isinstance(outs, (tuple, list)) else (outs, )


def randomize_bn_positive(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random running statistics, gamma in [0.5, 1.5], beta ~ N(0, 0.5).

    A deep net of training-mode BNs amplifies rounding differences
    exponentially with depth (Yang et al., "A Mean Field Theory of Batch
    Normalization", 2019): with gamma ~ N(0, 1) two orderings of the same
    float64 sums drift apart by ~2x per layer, 1e-16 -> 1e-10 over S0's 43
    layers, whatever the formulation. Positive gammas around 1 keep that
    drift at ~1e-12, so 1e-10 still separates exact from wrong.
    """
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            shape, dtype = m.running_mean.shape, m.running_mean.dtype
            m.running_mean.copy_(torch.randn(shape, generator=gen))
            m.running_var.copy_(torch.rand(shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(shape, generator=gen) * 0.5)
    return model


@torch.no_grad()
def realistic_running_stats(model: nn.Module, x: torch.Tensor,
                            seed: int = 0) -> nn.Module:
    """Running statistics near the data's, randomly perturbed.

    With N(0, 1) running means, a 43-layer net whose BNs use them (the
    ``norm_eval`` case) grows without bound and overflows; the statistics of
    one training-mode pass (momentum None: the cumulative average), shifted
    and scaled at random per channel, keep it finite and still random.
    ``momentum`` stays None, so the steps test the cumulative average too.
    """
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    modes = [m.training for m in bns]
    for m in bns:
        m.train()
        m.momentum = None
        m.reset_running_stats()
    model(x)
    for m, mode in zip(bns, modes):
        m.train(mode)
        shape, dtype = m.running_mean.shape, m.running_mean.dtype
        std = m.running_var.sqrt()
        m.running_mean.add_(0.1 * std * torch.randn(shape, generator=gen,
                                                    dtype=dtype))
        m.running_var.mul_(torch.rand(shape, generator=gen,
                                      dtype=dtype) * 0.4 + 0.8)
    return model


def pair(model, impl='fast', randomize=randomize_bn):
    model = randomize(model.double())
    return set_impl(copy.deepcopy(model), impl), set_impl(model, 'reference')


BLOCKS = {  # in, out, kernel, stride, dilation, groups, k
    'depthwise_k4_identity_se': (16, 16, 3, 1, 1, 16, 4),
    'depthwise_k4_stride2': (8, 8, 3, 2, 1, 8, 4),
    'depthwise_k1_dilated': (8, 8, 3, 1, 2, 8, 1),
    'depthwise_k2_dilated_stride2': (8, 8, 3, 2, 2, 8, 2),
    'pointwise_k4_identity': (8, 8, 1, 1, 1, 1, 4),
    'pointwise_k4_wider_se': (8, 16, 1, 1, 1, 1, 4),
    'pointwise_k1_identity': (8, 8, 1, 1, 1, 1, 1),
    'dense_3x3_k3': (4, 6, 3, 1, 1, 1, 3),
    'grouped_3x3_k2': (8, 8, 3, 1, 1, 2, 2),
}


@pytest.mark.parametrize('impl', ['fast', 'batched'])
@pytest.mark.parametrize('momentum', [0.1, None])
@pytest.mark.parametrize('name', list(BLOCKS))
def test_block_equals_per_branch_float64(name, momentum, impl):
    cin, cout, kernel, stride, dilation, groups, k = BLOCKS[name]
    torch.manual_seed(0)
    block = MobileOneBlock(cin, cout, kernel, stride=stride,
                           dilation=dilation, groups=groups,
                           num_conv_branches=k, use_se=cout >= 16)
    for m in block.modules():
        if isinstance(m, _BatchNorm):
            m.momentum = momentum
    fast, ref = pair(block, impl)
    x = torch.randn(3, cin, 9, 9, dtype=torch.float64)
    check_same(fast.train(), ref.train(), x, steps=3)


def test_the_fast_forms_are_the_ones_that_run(monkeypatch):
    """Folded for 1x1 blocks with k > 1 (enough locations), per-channel
    branches folded for depthwise blocks, 'batched' on request, per branch
    for the rest on a CPU, the fused kernel in eval: each form is called
    where the docstring says."""
    calls = []
    for fn in ('folded_pointwise_train', 'depthwise_train', 'batched_train',
               'eval_forward'):
        orig = getattr(fast_branches, fn)
        monkeypatch.setattr(
            fast_branches, fn,
            lambda *a, _f=orig, _n=fn: calls.append(_n) or _f(*a))
    x = torch.randn(2, 8, 6, 6)
    pw = MobileOneBlock(8, 8, 1, num_conv_branches=4).train()
    dw = MobileOneBlock(8, 8, 3, groups=8, num_conv_branches=4).train()
    dense = MobileOneBlock(8, 8, 3, num_conv_branches=2).train()
    pw(x), dw(x), dense(x), pw.eval()(x)
    assert calls == ['folded_pointwise_train', 'depthwise_train',
                     'eval_forward']
    calls.clear()
    set_impl(dw, 'batched')(x)
    set_impl(pw.train(), 'fast')(torch.randn(2, 8, 2, 2))  # 8 < 2 * 4 * 8
    assert calls == ['batched_train']
    calls.clear()
    set_impl(pw.train(), 'reference')(x)
    set_impl(dw.train(), 'reference')(x)
    assert calls == []


def test_syncbn_and_mixed_modes_fall_back_to_per_branch():
    block = MobileOneBlock(8, 8, 1, num_conv_branches=2,
                           norm_cfg=dict(type='SyncBN')).train()
    assert fast_branches.fast_forward(block, torch.randn(2, 8, 4, 4)) is None
    block = MobileOneBlock(8, 8, 1, num_conv_branches=2).train()
    block.identity.eval()
    assert fast_branches.fast_forward(block, torch.randn(2, 8, 4, 4)) is None
    # one value per channel: the per-branch BN raises its own error
    with pytest.raises(ValueError, match='more than 1 value'):
        MobileOneBlock(8, 8, 1, num_conv_branches=2).train()(
            torch.randn(1, 8, 1, 1))


def test_bad_branch_impl_is_named():
    with pytest.raises(ValueError, match="'fast', 'batched', 'reference'"):
        MobileOne('s0', branch_impl='folded')


@pytest.mark.parametrize('arch,kwargs', [
    ('s0', {}),
    ('s4', {}),
    ('s0', dict(frozen_stages=2)),
    ('s0', dict(norm_eval=True)),
    ('s0', dict(strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4))),
])
def test_backbone_training_equals_per_branch_float64(arch, kwargs):
    """One training step (forward, backward, SGD step) of the whole
    backbone. One, not several: a deep net of training-mode BNs amplifies
    rounding (see :func:`randomize_bn_positive`); the reference itself with
    its input changed by 1e-15 relative differs by 1e-11..2e-10 in its
    gradients after one step (S0, S4 at 64-96 px), and more after each."""
    torch.manual_seed(0)
    model = MobileOne(arch, out_indices=(0, 1, 2, 3), **kwargs)
    # norm_eval at 64 px: the step's BN-free forward overflows to nan
    size = 96 if kwargs.get('norm_eval') else 64
    x = torch.randn(4, 3, size, size, dtype=torch.float64)
    realistic_running_stats(randomize_bn_positive(model.double()), x)
    fast, ref = pair(model, randomize=lambda m: m)
    check_same(fast.train(), ref.train(), x, steps=1, eval_rtol=EVAL_RTOL)


def test_apple_checkpoint_trains_the_same_float64():
    """After load_state_dict of an Apple-layout (unfused) S0 checkpoint."""
    torch.manual_seed(0)
    apple = randomize_bn_positive(
        AppleMobileOne('s0', num_classes=10, fused=False))
    converted = convert(apple.state_dict(), 'apple')
    backbone_sd = {k[len('backbone.'):]: v for k, v in converted.items()
                   if k.startswith('backbone.')}
    model = MobileOne('s0', out_indices=(3, ))
    model.load_state_dict(backbone_sd, strict=True)
    x = torch.randn(4, 3, 64, 64, dtype=torch.float64)
    realistic_running_stats(model.double(), x)
    fast, ref = pair(model, randomize=lambda m: m)
    check_same(fast.train(), ref.train(), x, steps=1, eval_rtol=EVAL_RTOL)


@pytest.mark.parametrize('name', list(BLOCKS))
def test_block_float32_tolerance(name):
    """float32 rounds differently (one conv instead of k, a covariance
    instead of k variances): 1e-5 relative holds for a block's outputs,
    gradients and buffers over three steps (gradients relative to the
    model's largest gradient entry at the least: see the module docstring;
    float32 rounding is ~1e-7 of that)."""
    cin, cout, kernel, stride, dilation, groups, k = BLOCKS[name]
    torch.manual_seed(0)
    block = randomize_bn(MobileOneBlock(
        cin, cout, kernel, stride=stride, dilation=dilation, groups=groups,
        num_conv_branches=k))
    fast = copy.deepcopy(block)
    ref = set_impl(block, 'reference')
    x = torch.randn(3, cin, 9, 9)
    outs_f, grads_f = train_steps(fast.train(), x, steps=3)
    outs_r, grads_r = train_steps(ref.train(), x, steps=3)
    assert_rel(outs_f[0], outs_r[0], rtol=1e-5, what='output')
    floor = max(g.abs().max().item() for g in grads_r.values())
    for name in grads_r:
        assert_rel(grads_f[name], grads_r[name], rtol=1e-5, floor=floor,
                   what=f'grad {name}')
    buffers_r = dict(ref.named_buffers())
    for name, buf in fast.named_buffers():
        assert_rel(buf, buffers_r[name], rtol=1e-5, what=f'buffer {name}')


@pytest.mark.parametrize('kernel,groups', [(1, 1), (3, 8)])
def test_gradient_accumulation_float64(kernel, groups):
    """Two backward passes before a step (mmengine's accumulative_counts)
    add up as with separate branches, in train and in norm_eval mode
    (where the fused kernel is computed on the fly with gradients)."""
    torch.manual_seed(0)
    block = MobileOneBlock(8, 8, kernel, groups=groups, num_conv_branches=4)
    fast, ref = pair(block)
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    for bn_training in (True, False):
        for model in (fast, ref):
            model.train()
            for m in model.modules():
                if isinstance(m, _BatchNorm):
                    m.train(bn_training)
            model.zero_grad(set_to_none=True)
            gen = torch.Generator().manual_seed(1)
            for _ in range(2):
                out = model(x)
                (out * torch.randn(out.shape, generator=gen,
                                   dtype=out.dtype)).sum().backward()
        grads_r = {n: p.grad for n, p in ref.named_parameters()}
        floor = 1e-2 * max(g.abs().max().item() for g in grads_r.values())
        for name, p in fast.named_parameters():
            assert_rel(p.grad, grads_r[name], what=f'grad {name}',
                       floor=floor)
