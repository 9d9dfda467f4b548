"""Exact, faster forms of a MobileOne block's unfused forward.

ml-mobileone (and mmpretrain, timm) run every branch of a block as its own
conv and BN: ``k`` kxk conv+BN branches, a 1x1 conv+BN "scale" branch and a
BN-only identity branch, one after another. All branches are linear up to
their BNs, so they can be computed together without changing the function:

* **Eval** (every BN uses its running statistics, as in validation or with
  ``norm_eval``): each branch is an affine map, so the block is one conv with
  the fused kernel, computed on the fly by the same algebra that
  ``switch_to_deploy`` uses (differentiable, so frozen-BN fine-tuning works).
* **Training, batched** (:func:`batched_train`): the kxk kernels and the 1x1
  kernel (zero-padded to kxk, so its gradient stays on the centre tap) are
  concatenated at forward time into one conv with ``B * C_out`` outputs,
  followed by one ``F.batch_norm`` over all of them with the branches' own
  parameters and running statistics, and a sum over the branches.
* **Training, folded** (:func:`folded_pointwise_train`, 1x1 convs with
  groups 1): with the batch's own statistics, the sum of the branches is one
  conv. For branch ``j`` and the input's channel mean ``m`` and biased
  covariance ``S`` over the batch's ``N*H*W`` locations, BN normalizes
  ``W_j x`` with mean ``W_j m`` and variance ``diag(W_j S W_j^T)``, so
  ``sum_j BN_j(W_j x) = W_eff (x - m) + sum_j beta_j`` with
  ``W_eff = sum_j diag(gamma_j / sqrt(var_j + eps)) W_j`` (the identity BN
  adds ``diag(gamma / sqrt(diag(S) + eps))``). Autograd through ``m`` and
  ``S`` gives exactly BN's gradients. One conv plus one ``C_in x C_in``
  covariance replace ``k`` convs: worth it for ``k > 1``.
* **Training, per-channel branches folded** (:func:`depthwise_train`,
  depthwise blocks): the 1x1 scale branch of a depthwise block multiplies
  each channel by one weight ``w``, so with the batch's channel mean ``m``
  and biased variance ``v`` of its (strided) input its BN is
  ``gamma * w / sqrt(w^2 v + eps) * (x - m) + beta``; the identity BN is
  ``gamma / sqrt(v + eps) * (x - m) + beta``. Both are one per-channel
  affine map of ``x`` from one ``var_mean`` pass, added to the kxk
  branches (each its own conv and BN) in one ``addcmul``: the 1x1 conv, two
  BN passes and two sums disappear.

Every form updates each branch's ``running_mean``, ``running_var`` and
``num_batches_tracked`` exactly as its own BN would (momentum, or the
cumulative average when ``momentum is None``; unbiased variance), and keeps
the parameters, buffers and state-dict keys of the per-branch block.

The training forms need plain ``nn.BatchNorm2d`` layers with affine
parameters and running statistics, all in training mode, and more than one
value per channel; anything else (SyncBN, whose statistics must be reduced
across processes per layer; BN layers in mixed modes) falls back to the
per-branch forward, which is always right.
"""
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils.fusion import fuse_conv_bn, identity_kernel, pad_kernel

# Branch formulations of the unfused training-time forward.
# 'fast': eval on the fly; in training, 1x1 blocks with k > 1 folded where
#   that pays (_fold_pays), the others batched on CUDA and per branch on a
#   CPU (where one grouped conv with k outputs per channel is slower than k
#   depthwise convs).
# 'batched': eval on the fly, every training block batched.
# 'reference': one conv and BN per branch, as ml-mobileone.
BRANCH_IMPLS = ('fast', 'batched', 'reference')


def check_branch_impl(branch_impl: str) -> str:
    if branch_impl not in BRANCH_IMPLS:
        raise ValueError(f'branch_impl must be one of {BRANCH_IMPLS}, got '
                         f'{branch_impl!r}')
    return branch_impl


@contextmanager
def per_branch(model: nn.Module) -> Iterator[nn.Module]:
    """Run every unfused block of ``model`` per branch (ml-mobileone's
    forward) inside the ``with``; a fusion check compares the fused network
    with this, not with the fused kernel computed on the fly."""
    blocks = [m for m in model.modules() if hasattr(m, 'branch_impl')]
    saved = [m.branch_impl for m in blocks]
    for m in blocks:
        m.branch_impl = 'reference'
    try:
        yield model
    finally:
        for m, impl in zip(blocks, saved):
            m.branch_impl = impl


def _norms(block) -> List[_BatchNorm]:
    norms = [branch.bn for branch in block.conv_kxk]
    if block.conv_scale is not None:
        norms.append(block.conv_scale.bn)
    if block.identity is not None:
        norms.append(block.identity)
    return norms


def _uses_batch_stats(bn: _BatchNorm) -> bool:
    # _BatchNorm.forward: batch statistics in training mode, or when there
    # are no running statistics to use.
    return bn.training or bn.running_mean is None


def _plain_training_bn(bn: _BatchNorm) -> bool:
    return (type(bn) is nn.BatchNorm2d and bn.training and bn.affine
            and bn.track_running_stats)


def _sum(tensors: List[Tensor]) -> Tensor:
    """Sum with ``+``, not ``torch.stack(...).sum(0)``: in torch 2.7 the
    gradients of the latter reach leaf tensors as views of one expanded
    tensor; stored as ``.grad`` they alias each other, and a second backward
    (gradient accumulation) then adds into all of them."""
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    return total


def branch_kernel_bias(block) -> Tuple[Tensor, Tensor]:
    """The one kernel and bias equal to the sum of the branches with their
    BNs' running statistics (differentiable)."""
    pairs = [fuse_conv_bn(b.conv.weight, b.bn) for b in block.conv_kxk]
    if block.conv_scale is not None:
        w, b = fuse_conv_bn(block.conv_scale.conv.weight, block.conv_scale.bn)
        pairs.append((pad_kernel(w, block.kernel_size), b))
    if block.identity is not None:
        ident = identity_kernel(block.in_channels, block.groups,
                                block.kernel_size,
                                like=block.conv_kxk[0].conv.weight)
        pairs.append(fuse_conv_bn(ident, block.identity))
    return _sum([w for w, _ in pairs]), _sum([b for _, b in pairs])


def _conv(block, x: Tensor, weight: Tensor,
          bias: Optional[Tensor]) -> Tensor:
    return F.conv2d(x, weight, bias, block.stride, block.padding,
                    block.dilation, block.groups)


def eval_forward(block, x: Tensor) -> Tensor:
    """All BNs on running statistics: one conv with the fused kernel."""
    kernel, bias = branch_kernel_bias(block)
    return _conv(block, x, kernel, bias)


def _momentum(bn: _BatchNorm) -> float:
    # After num_batches_tracked was incremented, as _BatchNorm.forward.
    if bn.momentum is None:
        return 1.0 / float(bn.num_batches_tracked)
    return bn.momentum


@torch.no_grad()
def _update_running(bn: _BatchNorm, mean: Tensor, var: Tensor,
                    count: int) -> None:
    """One BN's running-statistics update from its batch mean and biased
    variance over ``count`` values per channel, as ``F.batch_norm`` does."""
    bn.num_batches_tracked.add_(1)
    f = _momentum(bn)
    bn.running_mean.mul_(1 - f).add_(mean, alpha=f)
    bn.running_var.mul_(1 - f).add_(var * (count / (count - 1)), alpha=f)


def folded_pointwise_train(block, x: Tensor) -> Tensor:
    """Training forward of a 1x1, groups-1, stride-1 block as one conv with
    the kernel folded from the batch's statistics (module docstring)."""
    n, c, h, w = x.shape
    count = n * h * w
    mean = x.mean((0, 2, 3))
    xc = x - mean.view(1, c, 1, 1)
    flat = xc.reshape(n, c, h * w)
    # Centred (two-pass) covariance: no cancellation in float32.
    cov = torch.bmm(flat, flat.transpose(1, 2)).sum(0) / count
    weights = torch.cat([b.conv.weight.reshape(-1, c)
                         for b in block.conv_kxk])  # (k * C_out, C_in)
    bns = [b.bn for b in block.conv_kxk]
    var = ((weights @ cov) * weights).sum(1)
    gamma = torch.cat([bn.weight for bn in bns])
    eps = torch.cat([weights.new_full((bn.num_features, ), bn.eps)
                     for bn in bns])
    scale = gamma / (var + eps).sqrt()
    kernel = (scale[:, None] * weights).reshape(
        len(bns), -1, c).sum(0)  # (C_out, C_in)
    bias = _sum([bn.bias for bn in bns])
    ident = block.identity
    if ident is not None:
        var_x = cov.diagonal()
        kernel = kernel + torch.diag(ident.weight / (var_x + ident.eps).sqrt())
        bias = bias + ident.bias
    out = F.conv2d(xc, kernel[:, :, None, None], bias)
    with torch.no_grad():
        means = weights @ mean
        out_ch = block.out_channels
        for j, bn in enumerate(bns):
            sl = slice(j * out_ch, (j + 1) * out_ch)
            _update_running(bn, means[sl], var[sl], count)
        if ident is not None:
            _update_running(ident, mean, var_x, count)
    return out


def _strided(block, x: Tensor) -> Tensor:
    """What a 1x1 conv with the block's stride and no padding sees: the
    centre taps of the kxk windows."""
    return x if block.stride == 1 else x[:, :, ::block.stride,
                                         ::block.stride]


def depthwise_train(block, x: Tensor) -> Tensor:
    """Training forward of a depthwise block: the kxk branches per branch,
    the 1x1 scale and identity branches as one per-channel affine map of
    the (strided) input from its batch statistics (module docstring)."""
    out = _sum([branch(x) for branch in block.conv_kxk])
    xs = _strided(block, x)
    n, c, h, w = xs.shape
    count = n * h * w
    var, mean = torch.var_mean(xs, dim=(0, 2, 3), unbiased=False)
    scale_bn = block.conv_scale.bn
    weight = block.conv_scale.conv.weight.reshape(c)
    scale_var = weight * weight * var
    slope = scale_bn.weight * weight / (scale_var + scale_bn.eps).sqrt()
    shift = scale_bn.bias
    ident = block.identity
    if ident is not None:
        slope = slope + ident.weight / (var + ident.eps).sqrt()
        shift = shift + ident.bias
    shift = shift - slope * mean
    out = torch.addcmul(out + shift.view(1, c, 1, 1), xs, slope.view(1, c, 1,
                                                                     1))
    with torch.no_grad():
        _update_running(scale_bn, weight * mean, scale_var, count)
        if ident is not None:
            _update_running(ident, mean, var, count)
    return out


def _interleave(tensors: List[Tensor], groups: int) -> Tensor:
    """Stack per-branch tensors ``(C_out, ...)`` into ``(B * C_out, ...)``
    ordered group, branch, channel-in-group: a grouped conv's outputs."""
    stacked = torch.stack(tensors)  # (B, C_out, ...)
    b, c = stacked.shape[:2]
    rest = stacked.shape[2:]
    return stacked.reshape(b, groups, c // groups, *rest).transpose(
        0, 1).reshape(b * c, *rest)


def batched_train(block, x: Tensor) -> Tensor:
    """Training forward with the kxk and 1x1 scale branches as one conv and
    one batch norm (module docstring); the identity BN runs on its own."""
    convs = [b.conv for b in block.conv_kxk]
    bns = [b.bn for b in block.conv_kxk]
    kernels = [conv.weight for conv in convs]
    if block.conv_scale is not None:
        kernels.append(pad_kernel(block.conv_scale.conv.weight,
                                  block.kernel_size))
        bns.append(block.conv_scale.bn)
    g, nb = block.groups, len(bns)
    z = _conv(block, x, _interleave(kernels, g), None)
    running_mean = _interleave([bn.running_mean for bn in bns], g)
    running_var = _interleave([bn.running_var for bn in bns], g)
    for bn in bns:
        bn.num_batches_tracked.add_(1)
    z = F.batch_norm(z, running_mean, running_var,
                     _interleave([bn.weight for bn in bns], g),
                     _interleave([bn.bias for bn in bns], g), True,
                     _momentum(bns[0]), bns[0].eps)
    n, _, h, w = z.shape
    c = block.out_channels
    out = z.view(n, g, nb, c // g, h, w).sum(2).view(n, c, h, w)
    with torch.no_grad():
        means = running_mean.view(g, nb, c // g).transpose(0, 1)
        variances = running_var.view(g, nb, c // g).transpose(0, 1)
        for j, bn in enumerate(bns):
            bn.running_mean.copy_(means[j].reshape(-1))
            bn.running_var.copy_(variances[j].reshape(-1))
    if block.identity is not None:
        out = out + block.identity(x)
    return out


def _can_batch(bns: List[_BatchNorm]) -> bool:
    # One F.batch_norm call needs one eps and one momentum for all.
    first = bns[0]
    return all(bn.eps == first.eps and bn.momentum == first.momentum and (
        first.momentum is not None
        or bool(bn.num_batches_tracked == first.num_batches_tracked))
        for bn in bns)


def fast_forward(block, x: Tensor) -> Optional[Tensor]:
    """The sum of the block's branches by the block's ``branch_impl``, or
    ``None`` where only the per-branch forward applies."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        # Exported graphs (ONNX, Core ML via tracing) show the branches of
        # an unfused block, not the arithmetic of its on-the-fly kernel.
        return None
    norms = _norms(block)
    batch_stats = [_uses_batch_stats(bn) for bn in norms]
    if not any(batch_stats):
        return eval_forward(block, x)
    if not all(_plain_training_bn(bn) for bn in norms):
        return None  # SyncBN, mixed modes, no affine/running statistics
    n, _, h, w = x.shape
    if n * h * w <= 1:
        return None  # the per-branch BN raises its own clear error
    if block.branch_impl == 'fast' and _fold_pays(block, n * h * w):
        return folded_pointwise_train(block, x)
    if block.branch_impl == 'fast' and _is_depthwise(block) and \
            not x.is_cuda:
        return depthwise_train(block, x)
    if block.branch_impl == 'fast' and not x.is_cuda:
        return None  # measured: per branch is the fastest rest on a CPU
    conv_bns = norms[:-1] if block.identity is not None else norms
    return batched_train(block, x) if _can_batch(conv_bns) else None


def _is_depthwise(block) -> bool:
    """Depthwise with a 1x1 scale branch: every non-kxk branch is a
    per-channel affine map (:func:`depthwise_train`)."""
    return (block.conv_scale is not None
            and block.groups == block.in_channels == block.out_channels)


def _fold_pays(block, count: int) -> bool:
    """Fold a 1x1 block when it has k > 1 branches and the batch has many
    locations per input channel: the fold costs one conv plus a
    ``C_in x C_in`` covariance (``count * C_in^2``) and ``k`` small
    ``C_out x C_in x C_in`` products, against ``k`` convs. Measured on a
    2-core CPU (docs/en/notes/training_speed.md): 3x faster at 48 channels x
    12x32x32, 1.5x at 128 x 12x16x16, 0.84x at 256 x 12x8x8."""
    k = len(block.conv_kxk)
    return (block.kernel_size == 1 and block.groups == 1
            and block.stride == 1 and block.conv_scale is None and k > 1
            and count >= 2 * k * block.in_channels)
