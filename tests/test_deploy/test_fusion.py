"""Whole-model fusion and fused checkpoints
(mobileone_mm/deploy/fusion.py)."""
import os

import pytest
import torch

from mobileone_mm import reparameterize as top_level_reparameterize
from mobileone_mm.apis import build_model, load_config
from mobileone_mm.deploy import fusion as module
from mobileone_mm.deploy.fusion import (FusionCheckFailed, count_unfused,
                                        fuse_checkpoint, reparameterize)
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError

from ..utils import assert_fused_matches_branches, randomize_bn
from .conftest import CLS_S0

SMALL = dict(input_size=64)  # the config's check input: 64x64, not 224


@pytest.fixture
def trained(tmp_path):
    """The S0 classifier with random BN statistics, saved as a checkpoint."""
    cfg = load_config(str(CLS_S0))
    torch.manual_seed(0)
    model = randomize_bn(build_model(cfg)).eval()
    path = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return model, str(path)


def test_reparameterize_copies_unless_inplace():
    model = randomize_bn(MobileOne('s0')).eval()
    fused = reparameterize(model)
    assert fused is not model and count_unfused(fused) == 0
    assert count_unfused(model) == 43 and not model.is_fused
    assert top_level_reparameterize is reparameterize
    same = reparameterize(model, inplace=True)
    assert same is model and model.is_fused
    assert reparameterize(model, inplace=True) is model  # idempotent


def test_reparameterize_keeps_mode_and_dtype():
    model = MobileOne('s0').double().train()
    fused = reparameterize(model)
    assert fused.training
    assert {p.dtype for p in fused.parameters()} == {torch.float64}


def test_fuse_checkpoint_writes_a_checked_fused_checkpoint(trained, tmp_path):
    model, ckpt = trained
    out = tmp_path / 'deploy' / 'fused.pth'
    check = fuse_checkpoint(str(CLS_S0), ckpt, str(out), cfg_options=SMALL)
    assert check['ok'] and check['input_shape'] == [1, 3, 64, 64]
    assert check['max_abs_diff'] <= 1e-4 * max(check['max_abs_output'], 1)
    assert check['out'] == str(out)
    saved = torch.load(out, weights_only=True)
    assert saved['meta'] == dict(fused=True, config='mobileone_s0_in1k.py',
                                 src='trained.pth')
    # loads strictly into the deploy=True model, with the same outputs
    cfg = load_config(str(CLS_S0), dict(model=dict(backbone=dict(deploy=True))))
    fused = build_model(cfg, str(out))
    x = torch.rand(1, 3, 64, 64)
    assert_fused_matches_branches(model, fused, x)
    assert sorted(os.listdir(out.parent)) == ['fused.pth']  # no temporary


def test_refuses_to_overwrite_the_input(trained):
    _, ckpt = trained
    before = open(ckpt, 'rb').read()
    with pytest.raises(UserError, match='refusing to overwrite the input'):
        fuse_checkpoint(str(CLS_S0), ckpt, ckpt, cfg_options=SMALL)
    assert open(ckpt, 'rb').read() == before


def test_wrong_variant_writes_nothing(tmp_path):
    cfg = load_config(str(CLS_S0), dict(model=dict(
        backbone=dict(arch='s1'), head=dict(in_channels=1280))))
    ckpt = tmp_path / 's1.pth'
    torch.save(dict(state_dict=build_model(cfg).state_dict()), ckpt)
    out = tmp_path / 'out.pth'
    with pytest.raises(UserError, match='does not fit'):
        fuse_checkpoint(str(CLS_S0), str(ckpt), str(out), cfg_options=SMALL)
    assert not out.exists()


def test_failed_check_writes_nothing(trained, tmp_path, monkeypatch):
    """A fusion that changes the outputs is caught before anything is
    written."""
    def broken(model, inplace=False):
        fused = reparameterize(model, inplace)
        with torch.no_grad():
            fused.backbone.stage4[0].reparam_conv.bias += 10.
        return fused

    monkeypatch.setattr(module, 'reparameterize', broken)
    _, ckpt = trained
    out = tmp_path / 'out' / 'fused.pth'
    with pytest.raises(FusionCheckFailed, match='nothing written') as info:
        fuse_checkpoint(str(CLS_S0), ckpt, str(out), cfg_options=SMALL)
    assert not info.value.check['ok'] and info.value.check['max_abs_diff'] > 1
    assert not out.exists() and not out.parent.exists()


def test_interrupted_write_leaves_no_file(trained, tmp_path, monkeypatch):
    """Written atomically: a save that fails half-way leaves neither the
    output nor a temporary file, and an older output stays as it was."""
    _, ckpt = trained
    out = tmp_path / 'fused.pth'
    out.write_bytes(b'older output')

    def failing_save(obj, path):
        open(path, 'wb').write(b'half a checkpoint')
        raise OSError('disk full')

    monkeypatch.setattr(module.torch, 'save', failing_save)
    with pytest.raises(OSError, match='disk full'):
        fuse_checkpoint(str(CLS_S0), ckpt, str(out), cfg_options=SMALL)
    assert out.read_bytes() == b'older output'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['fused.pth',
                                                           'trained.pth']


def test_package_attributes_do_not_shadow_modules():
    """``mobileone_mm.deploy.reparameterize`` is the function and the module
    has its own name; the same for the benchmark driver and the checkpoint
    converter."""
    import mobileone_mm.benchmark as benchmark
    import mobileone_mm.checkpoint as checkpoint
    import mobileone_mm.deploy as deploy
    from mobileone_mm.benchmark import driver
    from mobileone_mm.checkpoint import formats
    assert callable(deploy.reparameterize) and deploy.fusion is module
    assert benchmark.run is driver.run and benchmark.driver is driver
    assert checkpoint.convert is formats.convert
    assert checkpoint.formats is formats
