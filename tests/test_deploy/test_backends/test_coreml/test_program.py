"""The Core ML backend (mobileone_mm/deploy/coreml.py): conversion, op counts
and the conv weights read back from the saved ML program. Core ML predicts
only on macOS; the ``.mlpackage`` is read on any OS, so what it holds is
checked here against the fused PyTorch model."""
import platform

import numpy as np
import pytest
import torch

from mobileone_mm.deploy.backends.coreml import program as coreml
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError

from ...conftest import S0_BLOCKS, TINY_SE_ARCH, fused_backbone

X = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def s0():
    """The fused S0 backbone (BN statistics from random batches)."""
    return fused_backbone('s0')


@pytest.fixture(scope='module')
def s0_programs(s0, tmp_path_factory):
    """Its ML programs at fp32 and fp16."""
    folder = tmp_path_factory.mktemp('coreml')
    return {precision: coreml.export_coreml(
        s0, X, str(folder / f'backbone_{precision}.mlpackage'), precision)
        for precision in ('fp32', 'fp16')}


def mismatches(program, reference, dtype):
    """Indices of the convs whose weight or bias differ between the program
    and the PyTorch convs cast to ``dtype``; a different count is a
    mismatch of every conv."""
    if len(program) != len(reference):
        return list(range(max(len(program), len(reference))))
    bad = []
    for i, ((w, b), (rw, rb)) in enumerate(zip(program, reference)):
        same_bias = (b is None and rb is None) or (
            b is not None and rb is not None
            and np.array_equal(b, rb.astype(dtype)) and b.dtype == dtype)
        if not (w.dtype == dtype and np.array_equal(w, rw.astype(dtype))
                and same_bias):
            bad.append(i)
    return bad


def test_fused_s0_program_is_a_chain_of_43_convs(s0_programs):
    for precision, path in s0_programs.items():
        ops = coreml.coreml_ops(path)
        assert ops['conv'] == S0_BLOCKS and ops['relu'] == S0_BLOCKS
        assert 'add' not in ops
        # fp32 in and out: an fp16 program casts its input and outputs
        assert ('cast' in ops) == (precision == 'fp16')


def test_fp32_program_holds_the_fused_weights_exactly(s0, s0_programs):
    program = coreml.coreml_conv_weights(s0_programs['fp32'])
    reference = coreml.torch_conv_weights(s0, X)
    assert len(program) == len(reference) == S0_BLOCKS
    for (w, b), (rw, rb) in zip(program, reference):
        assert w.dtype == np.float32 and b is not None
        torch.testing.assert_close(torch.from_numpy(w), torch.from_numpy(rw),
                                   rtol=0, atol=0)
        torch.testing.assert_close(torch.from_numpy(b), torch.from_numpy(rb),
                                   rtol=0, atol=0)
    assert mismatches(program, reference, np.float32) == []


def test_fp16_program_holds_the_weights_rounded_to_fp16(s0, s0_programs):
    """An fp16 program stores every weight as float16: exactly the PyTorch
    weight rounded to the nearest float16 (numpy's and coremltools' cast
    round the same way), no other change."""
    program = coreml.coreml_conv_weights(s0_programs['fp16'])
    reference = coreml.torch_conv_weights(s0, X)
    assert len(program) == S0_BLOCKS
    assert mismatches(program, reference, np.float16) == []
    # and the rounding is real: the fp32 weights themselves do not match
    assert mismatches(program, reference, np.float32) == list(range(S0_BLOCKS))


def test_a_changed_weight_is_caught(s0, s0_programs):
    """The comparison can fail: one PyTorch weight changed by a small step
    is reported, at that conv only."""
    program = coreml.coreml_conv_weights(s0_programs['fp32'])
    reference = coreml.torch_conv_weights(s0, X)
    w, b = reference[20]
    changed = w.copy()
    changed.flat[7] = np.nextafter(changed.flat[7], np.float32(np.inf))
    reference[20] = (changed, b)
    assert mismatches(program, reference, np.float32) == [20]
    with pytest.raises(AssertionError):
        torch.testing.assert_close(torch.from_numpy(program[20][0]),
                                   torch.from_numpy(changed), rtol=0, atol=0)
    reference[20] = (w, b + np.float32(1e-3))
    assert mismatches(program, reference, np.float32) == [20]
    # a conv missing from either side is caught too
    assert mismatches(program, reference[:-1], np.float32) != []


def test_se_convs_in_program_order(tmp_path):
    """With SE blocks the block's conv runs first, then the SE's two convs:
    the program's order, which the module order is not."""
    torch.manual_seed(0)
    model = MobileOne(TINY_SE_ARCH, out_indices=(0, 1, 2, 3))
    model.switch_to_deploy()
    model.eval()
    path = coreml.export_coreml(model, X, str(tmp_path / 'se.mlpackage'))
    program = coreml.coreml_conv_weights(path)
    reference = coreml.torch_conv_weights(model, X)
    # 1 stem + 2 x 4 blocks, and 2 x 2 SE blocks of 2 convs
    assert len(program) == len(reference) == 9 + 2 * 4
    assert mismatches(program, reference, np.float32) == []
    in_module_order = [(m.weight.detach().numpy(), m.bias.detach().numpy())
                       for m in model.modules()
                       if isinstance(m, torch.nn.Conv2d)]
    assert mismatches(program, in_module_order, np.float32) != []


def test_torch_conv_weights_follow_the_calls():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1, bias=False),
                              torch.nn.Conv2d(4, 2, 3))
    weights = coreml.torch_conv_weights(net, torch.zeros(1, 3, 5, 5))
    assert [w.shape for w, _ in weights] == [(4, 3, 1, 1), (2, 4, 3, 3)]
    assert weights[0][1] is None and weights[1][1].shape == (2, )
    assert not any(m._forward_hooks for m in net.modules())  # hooks removed


@pytest.mark.skipif(platform.system() == 'Darwin',
                    reason='Core ML predicts on macOS')
def test_latency_and_outputs_need_macos(s0_programs, s0):
    stats, note = coreml.coreml_latency(s0_programs['fp32'], (1, 3, 64, 64), 1)
    assert stats is None and 'needs macOS' in note
    assert coreml.coreml_compare(s0_programs['fp32'], s0, X) is None


def test_ops_of_a_non_program_is_an_error(tmp_path):
    with pytest.raises(Exception):
        coreml.coreml_ops(str(tmp_path / 'missing.mlpackage'))


def test_missing_coremltools_names_the_fix(no_coremltools):
    with pytest.raises(UserError, match='leave coreml out of --backends'):
        coreml.import_coremltools()
