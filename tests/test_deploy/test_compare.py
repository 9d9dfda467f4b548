"""One forward-and-compare with one tolerance (mobileone_mm/deploy/compare.py)."""
import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from mobileone_mm.deploy.compare import (RTOL, FlatOutputs, compare_models,
                                         compare_outputs, forward_tensors)
from mobileone_mm.models import MobileOneBlock

from ..utils import randomize_bn


class Nested(nn.Module):
    def forward(self, x):
        return dict(a=x, b=[x + 1, (x * 2, )], c='not a tensor')


class WithPreprocessor(nn.Module):
    data_preprocessor = None

    def forward(self, x, mode='predict'):
        return (x * 0, ) if mode == 'tensor' else 'post-processed'


def test_forward_tensors_flattens_in_order():
    x = torch.ones(1, 2)
    outs = forward_tensors(Nested(), x)
    assert [float(o[0, 0]) for o in outs] == [1., 2., 2.]


def test_forward_tensors_runs_openmmlab_models_in_tensor_mode():
    outs = forward_tensors(WithPreprocessor(), torch.ones(1, 2))
    assert len(outs) == 1 and float(outs[0].sum()) == 0.


def test_tolerance_is_relative_to_the_largest_output():
    ref = [np.full(4, 10.), np.zeros(2)]
    inside = [ref[0] + RTOL * 10 * 0.99, ref[1]]
    outside = [ref[0] + RTOL * 10 * 1.01, ref[1]]
    assert compare_outputs(inside, ref)['ok']
    result = compare_outputs(outside, ref)
    assert not result['ok']
    assert result['max_abs_output'] == 10.
    assert result['max_rel_diff'] == pytest.approx(result['max_abs_diff'] / 10)
    # below 1 the floor is 1: absolute RTOL
    assert compare_outputs([np.full(2, 0.5 * RTOL)], [np.zeros(2)])['ok']
    assert not compare_outputs([np.full(2, 2 * RTOL)], [np.zeros(2)])['ok']
    assert compare_outputs(outside, ref, rtol=1e-3)['ok']


def test_tensors_and_arrays_mix():
    result = compare_outputs([torch.ones(3)], [np.ones(3, dtype=np.float32)])
    assert result['max_abs_diff'] == 0. and result['ok']


def test_mismatched_outputs_are_errors():
    with pytest.raises(RuntimeError, match='2 outputs against 1'):
        compare_outputs([np.ones(2), np.ones(2)], [np.ones(2)])
    with pytest.raises(RuntimeError, match='shape'):
        compare_outputs([np.ones(3)], [np.ones(2)])


def test_compare_models_fused_against_unfused():
    torch.manual_seed(0)
    block = randomize_bn(MobileOneBlock(8, 8, 3, num_conv_branches=3,
                                        act_cfg=None)).eval()
    fused = copy.deepcopy(block)
    fused.switch_to_deploy()
    x = torch.rand(2, 8, 9, 9)
    assert compare_models(fused, block, x)['ok']
    with torch.no_grad():
        fused.reparam_conv.bias[0] += 1.
    result = compare_models(fused, block, x)
    assert not result['ok'] and result['max_abs_diff'] == pytest.approx(1., rel=1e-4)


def test_flat_outputs_flattens_nested_outputs():
    """One flattening for every backend: lists, tuples and dicts in order,
    what is not a tensor dropped."""
    class Nested(nn.Module):
        def forward(self, x):
            return [x, (x + 1, {'a': x + 2, 'b': None})]

    outs = FlatOutputs(Nested())(torch.zeros(1))
    assert isinstance(outs, tuple) and [float(o) for o in outs] == [0., 1., 2.]
    assert [float(o) for o in forward_tensors(Nested(), torch.zeros(1))] == \
        [0., 1., 2.]
