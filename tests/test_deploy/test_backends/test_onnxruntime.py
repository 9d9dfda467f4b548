"""The ONNX backend (mobileone_mm/deploy/onnx.py): export, op counts, ONNX
Runtime against PyTorch, latency."""
import pytest
import torch

from mobileone_mm.deploy.backends import onnxruntime as onnx_backend
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError

from ..conftest import S0_BLOCKS, check_latency, fused_backbone

X = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def fused_s0(tmp_path_factory):
    model = fused_backbone('s0')
    path = tmp_path_factory.mktemp('onnx') / 'backbone.onnx'
    return model, onnx_backend.export_onnx(model, X, str(path))


def test_fused_s0_graph_is_a_chain_of_43_convs(fused_s0):
    _, path = fused_s0
    ops = onnx_backend.onnx_ops(path)
    assert ops['Conv'] == S0_BLOCKS and ops['Relu'] == S0_BLOCKS
    assert 'Add' not in ops
    assert list(ops) == sorted(ops, key=lambda k: (-ops[k], k))


def test_unfused_s0_graph_has_the_branches(tmp_path):
    """The op count sees branches: an unfused S0 has one conv per branch and
    the adds that sum them."""
    torch.manual_seed(0)
    model = MobileOne('s0').eval()
    ops = onnx_backend.onnx_ops(onnx_backend.export_onnx(
        model, X, str(tmp_path / 'unfused.onnx')))
    # ONNX export folds each eval-mode conv+BN pair into one Conv; the
    # branches of a block are summed by one Add per branch after the first
    kxk = sum(b.num_conv_branches for b in model.blocks())
    scale = sum(b.conv_scale is not None for b in model.blocks())
    identity = sum(b.identity is not None for b in model.blocks())
    assert ops['Conv'] == kxk + scale > S0_BLOCKS
    assert ops['Add'] == kxk + scale + identity - S0_BLOCKS


def test_onnx_runtime_agrees_with_pytorch(fused_s0):
    model, path = fused_s0
    session = onnx_backend.onnx_session(path, threads=1)
    outputs = onnx_backend.onnx_run(session, X.numpy())
    assert [o.shape for o in outputs] == [
        (1, 48, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 1024, 2, 2)]
    check = onnx_backend.onnx_compare(session, model, X)
    assert check['ok'] and check['max_abs_diff'] <= 1e-4
    assert check['max_abs_output'] > 0.1
    with torch.no_grad():
        model.stage4[0].reparam_conv.bias += 1.
    try:
        assert not onnx_backend.onnx_compare(session, model, X)['ok']
    finally:
        with torch.no_grad():
            model.stage4[0].reparam_conv.bias -= 1.


def test_onnx_latency(fused_s0):
    _, path = fused_s0
    session = onnx_backend.onnx_session(path, threads=1)
    check_latency(onnx_backend.onnx_latency(session, (1, 3, 64, 64), runs=2), 2)


def test_missing_onnx_names_the_fix(monkeypatch):
    monkeypatch.setattr(onnx_backend, 'find_spec',
                        lambda name: None if name == 'onnxruntime' else True)
    with pytest.raises(UserError, match='needs onnxruntime.*leave onnxruntime out of --backends'):
        onnx_backend.require_onnx()
