"""The one backend interface (mobileone_mm/deploy/backends/base.py): every
registered backend passes the same contract tests."""
import platform

import pytest
import torch
import torch.nn as nn

from mobileone_mm.deploy.backends import (BACKEND_NAMES, all_backends,
                                          backend_name, backend_names,
                                          get_backend)
from mobileone_mm.deploy.chain_check import chain_expectation
from mobileone_mm.deploy.compare import compare_outputs, forward_tensors
from mobileone_mm.deploy.fusion import reparameterize
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError

SHAPE = (1, 3, 64, 64)


def test_the_backends_are_listed_by_one_vocabulary():
    assert BACKEND_NAMES == ('onnxruntime', 'coreml', 'ncnn')
    assert [b.name for b in all_backends()] == list(BACKEND_NAMES)
    for backend in all_backends():
        assert get_backend(backend.name.upper()) is backend
        assert backend.title and backend.conv_ops and backend.add_ops


def test_old_spellings_keep_working_with_a_note():
    notes = []
    assert backend_names(['onnx', 'ONNXRuntime', 'ncnn'], notes.append) == (
        'onnxruntime', 'ncnn')
    assert notes == ["backend 'onnx' is now called 'onnxruntime'; the old "
                     'name is deprecated']
    with pytest.raises(UserError, match='choose from onnxruntime coreml '
                       'ncnn'):
        backend_name('tflite')


@pytest.fixture(scope='module')
def fused_s0():
    torch.manual_seed(0)
    model = MobileOne('s0', out_indices=(3, ))
    for m in model.modules():  # BN statistics away from the identity
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.running_var, 0.5, 2.)
            nn.init.normal_(m.running_mean, 0., 0.1)
    return reparameterize(model.eval())


class Residual(nn.Module):
    """A branch the chain proof must see: conv, then x + conv(x)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        return y + self.b(y)


@pytest.mark.parametrize('name', BACKEND_NAMES)
def test_backend_contract(name, fused_s0, tmp_path):
    """Installed; exports the fused S0 backbone; its ops prove the plain
    chain (43 convs, no add); where this OS runs it, its outputs equal
    PyTorch's and it can be timed; elsewhere it says why not."""
    backend = get_backend(name)
    assert backend.missing() is None
    x = torch.rand(*SHAPE, generator=torch.Generator().manual_seed(1))
    path = backend.export(fused_s0, x, str(tmp_path / 'backbone'))
    ops = backend.ops(path)
    expected = chain_expectation(fused_s0)
    assert backend.chain_counts(ops) == (expected['convs'], 0) == (43, 0)
    why = backend.cannot_run()
    if why is not None:
        assert platform.system() != 'Darwin' and 'macOS' in why
        return
    check = compare_outputs(backend.run(path, x),
                            forward_tensors(fused_s0, x))
    assert check['ok'] and check['max_rel_diff'] < 1e-5, check
    run = backend.runner(path, SHAPE, threads=1)
    run()
    run()


@pytest.mark.parametrize('name', BACKEND_NAMES)
def test_backend_sees_a_branch(name, tmp_path):
    """The same counts on a graph with a residual add: the proof can fail."""
    backend = get_backend(name)
    x = torch.rand(1, 3, 16, 16)
    path = backend.export(Residual().eval(), x, str(tmp_path / 'residual'))
    convs, adds = backend.chain_counts(backend.ops(path))
    assert (convs, adds) == (2, 1)


@pytest.mark.parametrize('name', BACKEND_NAMES)
def test_a_missing_library_is_one_line_naming_the_fix(name, monkeypatch):
    backend = get_backend(name)
    modules = backend.modules or ('onnx', 'onnxruntime')
    monkeypatch.setattr('importlib.util.find_spec', lambda m: None)
    if name == 'coreml':  # imported, not looked up
        monkeypatch.setitem(__import__('sys').modules, 'coremltools', None)
    if name == 'onnxruntime':
        from mobileone_mm.deploy.backends import onnxruntime
        monkeypatch.setattr(onnxruntime, 'find_spec', lambda m: None)
    why = backend.missing()
    assert why is not None and '\n' not in why
    assert any(m in why for m in modules) and 'pip install' in why
    with pytest.raises(UserError, match=f'the {name} backend needs'):
        backend.require()
