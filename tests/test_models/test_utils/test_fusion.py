"""The pure tensor functions of fusion: BN folding, identity and padded
kernels (exact algebra, dtype and device of the weights kept)."""
import pytest
import torch
import torch.nn as nn

from mobileone_mm.models.utils import fuse_conv_bn, identity_kernel, pad_kernel

from tests.utils import randomize_bn


def test_fuse_conv_bn_formula():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4).double().eval()
    randomize_bn(bn)
    w = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    fw, fb = fuse_conv_bn(w, bn)
    sigma = (bn.running_var + bn.eps).sqrt()
    torch.testing.assert_close(fw, w * (bn.weight / sigma).view(-1, 1, 1, 1))
    torch.testing.assert_close(fb, bn.bias - bn.running_mean * bn.weight / sigma)
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    k = identity_kernel(4, 2, 3, like=w)
    assert k.dtype == torch.float64 and k.sum() == 4
    torch.testing.assert_close(nn.functional.conv2d(x, k, padding=1, groups=2), x)


@pytest.mark.parametrize('affine', [True, False])
def test_fused_conv_equals_conv_then_bn(affine):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False).double()
    bn = randomize_bn(nn.BatchNorm2d(4, affine=affine).double().eval())
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    w, b = fuse_conv_bn(conv.weight, bn)
    with torch.no_grad():
        torch.testing.assert_close(nn.functional.conv2d(x, w, b, padding=1),
                                   bn(conv(x)), rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match='expected a BatchNorm layer, got Conv2d'):
        fuse_conv_bn(conv.weight, conv)


def test_pad_kernel_centres_a_1x1_kernel():
    torch.manual_seed(0)
    k1 = torch.randn(4, 2, 1, 1, dtype=torch.float64)
    k3 = pad_kernel(k1, 3)
    assert k3.shape == (4, 2, 3, 3) and k3.dtype == torch.float64
    assert torch.equal(k3[..., 1, 1], k1[..., 0, 0])
    ring = k3.clone()
    ring[..., 1, 1] = 0
    assert not ring.any()  # zeros around the centre
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(nn.functional.conv2d(x, k3, padding=1),
                               nn.functional.conv2d(x, k1))
    assert pad_kernel(k3, 3) is k3  # already the size: unchanged


def test_identity_kernel_of_a_depthwise_conv():
    like = torch.empty(0, dtype=torch.float16)
    k = identity_kernel(6, 6, 3, like=like)
    assert k.shape == (6, 1, 3, 3) and k.dtype == torch.float16
    assert torch.equal(k[:, 0, 1, 1], torch.ones(6, dtype=torch.float16))
    assert k.sum() == 6
