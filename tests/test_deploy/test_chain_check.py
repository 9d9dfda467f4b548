"""The branch-free proof (mobileone_mm/deploy/chain_check.py)."""
import pytest

from mobileone_mm.deploy.chain_check import branch_free, chain_expectation
from mobileone_mm.models import MobileOne

from .conftest import S0_BLOCKS, S4_CONVS, TINY_SE_ARCH

S0_CHAIN = dict(blocks=S0_BLOCKS, se_blocks=0, convs=S0_BLOCKS, adds=0)
S4_CHAIN = dict(blocks=S0_BLOCKS, se_blocks=12, convs=S4_CONVS, adds=0)


@pytest.mark.parametrize('arch, expected', [
    ('s0', S0_CHAIN), ('s1', S0_CHAIN), ('s2', S0_CHAIN), ('s3', S0_CHAIN),
    ('s4', S4_CHAIN)])
def test_chain_expectation_per_variant(arch, expected):
    """43 blocks for every variant (paper Table 2); S4's 12 SE-ReLU blocks
    add 2 convs each: 67."""
    assert chain_expectation(MobileOne(arch)) == expected


def test_chain_expectation_counts_fused_and_unfused_alike():
    model = MobileOne(TINY_SE_ARCH)
    before = chain_expectation(model)
    model.switch_to_deploy()
    assert chain_expectation(model) == before == dict(
        blocks=9, se_blocks=4, convs=17, adds=0)


def test_plain_chain_is_branch_free():
    ok, why = branch_free({'conv': 43, 'relu': 43, 'const': 90}, S0_CHAIN)
    assert ok and why == '43 conv = 43 fused blocks, 0 add: a plain chain'
    ok, why = branch_free({'Conv': 67, 'Relu': 55}, S4_CHAIN, 'Conv', 'Add')
    assert ok
    assert why == '67 Conv = 43 fused blocks + 2 x 12 SE, 0 Add: a plain chain'


@pytest.mark.parametrize('ops', [
    {'conv': 46, 'add': 4},   # a block left with its branches
    {'conv': 43, 'add': 1},   # an addition, whatever the convs
    {'conv': 44},             # an extra conv
    {'conv': 42},             # a missing conv
    {},                       # no conv at all (wrong op name)
])
def test_branches_are_not_branch_free(ops):
    ok, why = branch_free(ops, S0_CHAIN)
    assert not ok
    assert why == (f'branches remain: {ops.get("conv", 0)} conv (a fused '
                   f'chain has 43) and {ops.get("add", 0)} add (a chain has 0)')


def test_op_names_are_the_backends():
    """Core ML's lower-case names do not count in an ONNX check."""
    assert not branch_free({'conv': 43}, S0_CHAIN, 'Conv', 'Add')[0]
    assert branch_free({'Conv': 43, 'add': 5}, S0_CHAIN, 'Conv', 'Add')[0]
