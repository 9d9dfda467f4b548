"""MobileOneBlock and SqueezeExcite (mobileone_mm/models/backbones/mobileone_block.py):
each block shape fuses exactly, its state is decided by its structure."""
import pytest
import torch
import torch.nn as nn

from mobileone_mm.models.backbones.mobileone_block import (MobileOneBlock,
                                                          SqueezeExcite)

from tests.utils import randomize_bn

# (in, out, kernel, stride, dilation, groups, k, se): every block shape of
# MobileOne (depthwise 3x3 with and without identity, pointwise 1x1, stem).
SHAPES = {
    'depthwise_identity': (8, 8, 3, 1, 1, 8, 4, False),
    'depthwise_stride2': (8, 8, 3, 2, 1, 8, 1, False),
    'depthwise_dilated': (8, 8, 3, 1, 2, 8, 2, False),
    'pointwise_identity_se': (16, 16, 1, 1, 1, 1, 3, True),
    'pointwise_widen': (8, 16, 1, 1, 1, 1, 1, False),
    'stem': (3, 8, 3, 2, 1, 1, 1, False),
}


@pytest.mark.parametrize('name', sorted(SHAPES))
def test_fused_block_equals_its_branches_float64(name):
    cin, cout, k, stride, dilation, groups, branches, se = SHAPES[name]
    torch.manual_seed(0)
    block = MobileOneBlock(cin, cout, k, stride=stride, dilation=dilation,
                           groups=groups, num_conv_branches=branches,
                           use_se=se, branch_impl='reference').double().eval()
    randomize_bn(block)
    assert len(block.conv_kxk) == branches
    assert (block.identity is not None) == (cin == cout and stride == 1)
    assert (block.conv_scale is not None) == (k > 1)
    x = torch.randn(2, cin, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        ref = block(x)
        block.switch_to_deploy()
        out = block(x)
    assert block.is_fused and block.conv_kxk is None
    assert block.reparam_conv.weight.shape == (cout, cin // groups, k, k)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_state_is_the_structure_and_fusion_is_idempotent():
    block = MobileOneBlock(8, 8, 3, groups=8, num_conv_branches=2).eval()
    randomize_bn(block)
    assert not block.is_fused
    block.switch_to_deploy()
    weight = block.reparam_conv.weight.clone()
    block.switch_to_deploy()
    assert torch.equal(block.reparam_conv.weight, weight)
    assert not block.reparam_conv.training  # follows the block's mode
    fused = MobileOneBlock(8, 8, 3, groups=8, deploy=True)
    assert fused.is_fused and fused.identity is None
    assert set(fused.state_dict()) == {'reparam_conv.weight',
                                       'reparam_conv.bias'}


def test_bad_block_arguments_are_clear():
    with pytest.raises(ValueError, match='identity branch needs'):
        MobileOneBlock(8, 16, 1, use_identity=True)
    with pytest.raises(ValueError, match='num_conv_branches'):
        MobileOneBlock(8, 8, 3, num_conv_branches=0)


def test_squeeze_excite_gates_each_channel():
    torch.manual_seed(0)
    se = SqueezeExcite(64)
    assert se.reduce.out_channels == 4  # ml-mobileone: int(64 * 0.0625)
    x = torch.rand(2, 64, 5, 5) + 0.1
    y = se(x)
    gate = y / x  # one sigmoid gate per (image, channel), in (0, 1)
    assert gate.min() > 0 and gate.max() < 1
    torch.testing.assert_close(gate, gate[..., :1, :1].expand_as(gate))
    expected = torch.sigmoid(se.expand(torch.relu(se.reduce(
        x.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(gate[..., 0, 0], expected[..., 0, 0])


def test_activation_runs_in_place_where_it_can():
    relu = MobileOneBlock(4, 4, 1).act
    assert isinstance(relu, nn.ReLU) and relu.inplace
    assert isinstance(MobileOneBlock(4, 4, 1, act_cfg=None).act, nn.Identity)
