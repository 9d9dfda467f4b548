"""The model the deploy tool exports (mobileone_mm/deploy/model_setup.py):
checkpoints read as data, the backbone, BN calibration."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from mobileone_mm.apis import load_config
from mobileone_mm.deploy import model_setup
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError

from .conftest import CLS_S0, code_running_checkpoint


def save(path, obj):
    torch.save(obj, path)
    return str(path)


def test_fused_and_unfused_checkpoints_are_told_apart(tmp_path):
    unfused = MobileOne('s0').state_dict()
    fused = MobileOne('s0', deploy=True).state_dict()
    # mmengine writes numpy values into meta: allowed, read as data
    meta = dict(epoch=np.int64(3), seed=np.array([1, 2]))
    assert not model_setup.checkpoint_is_fused(
        save(tmp_path / 'u.pth', dict(state_dict=unfused, meta=meta)))
    assert model_setup.checkpoint_is_fused(
        save(tmp_path / 'f.pth', dict(state_dict=fused, meta=meta)))
    assert model_setup.checkpoint_is_fused(save(tmp_path / 'bare.pth', fused))


def test_code_running_checkpoint_is_refused(tmp_path):
    marker = tmp_path / 'marker'
    ckpt = code_running_checkpoint(tmp_path / 'evil.pth', marker)
    with pytest.raises(UserError) as info:
        model_setup.checkpoint_is_fused(str(ckpt))
    message = str(info.value)
    assert str(ckpt) in message and 'plain data' in message
    assert '\n' not in message
    assert not marker.exists()


def test_unreadable_checkpoint_is_a_user_error(tmp_path):
    bad = tmp_path / 'bad.pth'
    bad.write_text('not a checkpoint')
    with pytest.raises(UserError, match='bad.pth'):
        model_setup.checkpoint_is_fused(str(bad))


def test_build_for_deploy_refuses_before_building(tmp_path, monkeypatch):
    marker = tmp_path / 'marker'
    ckpt = code_running_checkpoint(tmp_path / 'evil.pth', marker)
    built = []
    monkeypatch.setattr(model_setup, 'build_model',
                        lambda *args: built.append(args))
    with pytest.raises(UserError, match='evil.pth'):
        model_setup.build_for_deploy(load_config(str(CLS_S0)), str(ckpt),
                                     (1, 3, 64, 64), verbose=False)
    assert built == [] and not marker.exists()


def test_random_weights_are_calibrated_with_a_warning(capsys):
    cfg = load_config(str(CLS_S0))
    model, notes = model_setup.build_for_deploy(cfg, None, (1, 3, 64, 64))
    assert notes == [model_setup.RANDOM_WEIGHTS]
    assert 'warning: no checkpoint' in capsys.readouterr().err
    bn = model.backbone.stem.conv_kxk[0].bn
    assert not torch.equal(bn.running_var, torch.ones_like(bn.running_var))
    assert not model.training


def test_deploy_config_is_noted_as_fused():
    cfg = load_config(str(CLS_S0))
    cfg.model.backbone.deploy = True
    model, notes = model_setup.build_for_deploy(cfg, None, (1, 3, 64, 64),
                                                verbose=False)
    assert model.backbone.is_fused
    assert notes == [model_setup.PREFUSED, model_setup.RANDOM_WEIGHTS]


def test_backbone_of():
    backbone = MobileOne('s0')
    assert model_setup.backbone_of(backbone) is backbone
    holder = nn.Module()
    holder.backbone = backbone
    assert model_setup.backbone_of(holder) is backbone
    holder.backbone = nn.Identity()
    with pytest.raises(UserError, match='no MobileOne backbone'):
        model_setup.backbone_of(holder)


def test_whole_backbone_runs_through_stage_4():
    backbone = MobileOne('s0', out_indices=(1, 2))
    whole = model_setup.whole_backbone(backbone)
    assert whole.out_indices == (1, 2, 3) and backbone.out_indices == (1, 2)
    assert whole is not backbone and not whole.training
    outs = whole(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [128, 256, 1024]


def test_calibrate_bn_changes_statistics_only():
    torch.manual_seed(0)
    model = MobileOne('s0')
    weights = {k: v.clone() for k, v in model.state_dict().items()
               if 'running' not in k and 'num_batches' not in k}
    model_setup.calibrate_bn(model, (1, 3, 64, 64), batches=2)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())
    bn = model.stem.conv_kxk[0].bn
    assert int(bn.num_batches_tracked) == 2
    assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert not model.training
