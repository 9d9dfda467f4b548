import runpy
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mobileone_mm.apis import build_model
from mobileone_mm.deploy import fusion

from ..utils import assert_fused_matches_branches, randomize_bn
from ..utils import run_cli

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'reparameterize.py'

HEADER = "custom_imports = dict(imports=['mobileone_mm'], allow_failed_imports=False)\n"
CONFIGS = {
    'classification': """
        default_scope = 'mmpretrain'
        model = dict(
            type='ImageClassifier',
            backbone=dict(type='mobileone_mm.MobileOne', arch='s0'),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=1024))
        input_size = 64
    """,
    'segmentation': """
        default_scope = 'mmseg'
        model = dict(
            type='EncoderDecoder',
            data_preprocessor=dict(type='SegDataPreProcessor'),
            backbone=dict(type='mobileone_mm.MobileOne', arch='s0',
                          out_indices=(2, 3), strides=(2, 2, 1, 1),
                          dilations=(1, 1, 2, 4)),
            decode_head=dict(type='FCNHead', in_channels=1024, in_index=1,
                             channels=32, num_convs=1, num_classes=5),
            test_cfg=dict(mode='whole'))
        crop_size = (64, 64)
    """,
    'detection': """
        default_scope = 'mmdet'
        model = dict(
            type='RetinaNet',
            data_preprocessor=dict(type='DetDataPreprocessor'),
            backbone=dict(type='MobileOne', arch='s0', out_indices=(3, )),
            neck=None,
            bbox_head=dict(
                type='RetinaHead', num_classes=3, in_channels=1024,
                feat_channels=32, stacked_convs=1,
                anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                      scales_per_octave=1, ratios=[1.0],
                                      strides=[32]),
                bbox_coder=dict(type='DeltaXYWHBBoxCoder'),
                loss_cls=dict(type='FocalLoss', use_sigmoid=True),
                loss_bbox=dict(type='L1Loss')))
        img_scale = (64, 64)
    """,
}


@pytest.mark.parametrize('task', sorted(CONFIGS))
def test_reparameterize_tool(task, tmp_path):
    cfg_path = tmp_path / f'{task}.py'
    cfg_path.write_text(HEADER + textwrap.dedent(CONFIGS[task]))
    cfg = Config.fromfile(str(cfg_path))
    torch.manual_seed(0)
    model = randomize_bn(build_model(cfg))
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    out = tmp_path / 'fused.pth'
    proc = run_cli(TOOL, cfg_path, ckpt, out, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'max |diff|' in proc.stdout

    cfg.model.backbone.deploy = True
    fused = build_model(cfg, str(out))
    assert fused.backbone.is_fused
    x = torch.rand(1, 3, 64, 64)
    # float32 with random BN statistics: relative to the output scale
    assert_fused_matches_branches(model, fused, x)

    before = ckpt.read_bytes()
    proc = run_cli(TOOL, cfg_path, ckpt, ckpt, cwd=ROOT)
    assert proc.returncode != 0 and 'refusing to overwrite' in proc.stderr
    assert ckpt.read_bytes() == before


def test_wrong_variant_checkpoint_is_one_line_error(tmp_path):
    cfg_path = tmp_path / 'cls.py'
    cfg_path.write_text(HEADER + textwrap.dedent(CONFIGS['classification']))
    cfg = Config.fromfile(str(cfg_path))
    cfg.model.backbone.arch = 's1'
    cfg.model.head.in_channels = 1280
    ckpt = tmp_path / 's1.pth'
    torch.save({'state_dict': build_model(cfg).state_dict()}, ckpt)
    proc = run_cli(TOOL, cfg_path, ckpt, tmp_path / 'o.pth', cwd=ROOT)
    assert proc.returncode != 0
    assert proc.stderr.startswith('error:') and 'does not fit' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'o.pth').exists()


def test_failed_check_is_one_line_error(tmp_path, monkeypatch, capsys):
    """Fused outputs that differ: the comparison is printed, then one error
    line; nothing is written."""
    cfg_path = tmp_path / 'cls.py'
    cfg_path.write_text(HEADER + textwrap.dedent(CONFIGS['classification']))
    model = randomize_bn(build_model(Config.fromfile(str(cfg_path))))
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)

    real = fusion.reparameterize

    def broken(model, inplace=False):
        model = real(model, inplace)
        with torch.no_grad():
            model.head.fc.bias += 10.
        return model

    monkeypatch.setattr(fusion, 'reparameterize', broken)
    out = tmp_path / 'o.pth'
    monkeypatch.setattr(sys, 'argv', ['reparameterize.py', str(cfg_path),
                                      str(ckpt), str(out)])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(TOOL), run_name='__main__')
    message = str(info.value.code)
    assert message.startswith('error: fused outputs differ by ')
    assert message.endswith('nothing written') and '\n' not in message
    assert 'max |diff|' in capsys.readouterr().out
    assert not out.exists()
