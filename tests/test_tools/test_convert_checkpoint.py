import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mobileone_mm.checkpoint import (ConversionError, convert, convert_file,
                                     detect_format, unwrap)
from mobileone_mm.models import MobileOne

from ..apple_reference import AppleMobileOne
from ..utils import randomize_bn

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'convert_checkpoint.py'


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def ours_from(converted: dict, arch: str, fused: bool):
    meta_sd = {k[len('backbone.'):]: v for k, v in converted.items()
               if k.startswith('backbone.')}
    model = MobileOne(arch, deploy=fused).eval()
    model.load_state_dict(meta_sd, strict=True)
    model.double()

    def forward(x):
        feat = model(x)[-1].mean((2, 3))
        return F.linear(feat, converted['head.fc.weight'].double(),
                        converted['head.fc.bias'].double())

    return forward


def check_outputs(reference, converted, arch, fused):
    # float64: random BN statistics make deep nets amplify float32 rounding
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref = reference(x)
        out = ours_from(converted, arch, fused)(x)
    torch.testing.assert_close(out, ref, rtol=1e-7, atol=1e-7 * ref.abs().max().item())


def apple_model(arch, fused=False):
    torch.manual_seed(0)
    return randomize_bn(AppleMobileOne(arch, num_classes=10, fused=fused)).eval()


@pytest.mark.parametrize('arch', ['s0', 's1', 's2', 's3', 's4'])
def test_apple_unfused_every_key_maps_and_outputs_match(arch, tmp_path):
    ref = apple_model(arch)
    src = tmp_path / f'mobileone_{arch}_unfused.pth.tar'
    torch.save(ref.state_dict(), src)  # Apple's files: a bare state dict
    dst = tmp_path / 'converted.pth'
    meta = convert_file(str(src), str(dst))
    assert meta['src_format'] == 'apple' and meta['arch'] == arch
    assert meta['fused'] is False and meta['num_classes'] == 10
    ckpt = torch.load(dst, weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    sd = ckpt['state_dict']
    assert len(sd) == len(ref.state_dict())  # every key maps, none dropped
    assert all(k.startswith(('backbone.', 'head.fc.')) for k in sd)
    check_outputs(ref.double(), sd, arch, fused=False)


def test_apple_fused_checkpoint(tmp_path):
    ref = apple_model('s2', fused=True)
    src = tmp_path / 'mobileone_s2.pth.tar'
    torch.save({'state_dict': {f'module.{k}': v
                               for k, v in ref.state_dict().items()}}, src)
    dst = tmp_path / 'fused.pth'
    proc = run_tool(src, dst)
    assert proc.returncode == 0, proc.stderr
    assert 'S2 fused' in proc.stdout
    sd = torch.load(dst, weights_only=True)['state_dict']
    assert any('reparam_conv' in k for k in sd)
    check_outputs(ref.double(), sd, 's2', fused=True)


@pytest.mark.parametrize('arch', ['s0', 's4'])
def test_mmpretrain_checkpoint(arch, tmp_path):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    ref = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='MobileOne', arch=arch),  # mmpretrain's own
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=7,
                  in_channels=MobileOne(arch).out_channels[-1]))).eval()
    assert type(ref.backbone).__module__.startswith('mmpretrain')
    randomize_bn(ref)
    src = tmp_path / 'mmpretrain.pth'
    torch.save({'state_dict': ref.state_dict(), 'meta': {'epoch': 3}}, src)
    state = unwrap(torch.load(src, weights_only=True))
    assert detect_format(state) == 'mmpretrain'
    converted = convert(state, 'mmpretrain')
    assert len(converted) == len(state)
    ref.double()
    check_outputs(lambda x: ref(x, mode='tensor'), converted, arch, False)

    fused_ref = ref.backbone  # float64 since check_outputs
    fused_ref.switch_to_deploy()
    fused_sd = convert({f'backbone.{k}': v
                        for k, v in fused_ref.state_dict().items()}, 'mmpretrain')
    ours = MobileOne(arch, deploy=True).eval().double()
    ours.load_state_dict({k[9:]: v for k, v in fused_sd.items()}, strict=True)
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref_out = fused_ref(x)[-1]
        torch.testing.assert_close(ours(x)[-1], ref_out, rtol=1e-7,
                                   atol=1e-7 * ref_out.abs().max().item())


@pytest.mark.parametrize('arch', ['s0', 's4'])
def test_timm_checkpoint(arch, tmp_path):
    timm = pytest.importorskip('timm')
    torch.manual_seed(0)
    ref = timm.create_model(f'mobileone_{arch}', pretrained=False,
                            num_classes=5).eval()
    randomize_bn(ref)
    from safetensors.torch import save_file
    src = tmp_path / 'model.safetensors'  # timm's hub files are safetensors
    save_file(ref.state_dict(), str(src))
    dst = tmp_path / 'timm.pth'
    meta = convert_file(str(src), str(dst))
    assert meta['src_format'] == 'timm' and meta['arch'] == arch
    sd = torch.load(dst, weights_only=True)['state_dict']
    assert len(sd) == len(ref.state_dict())
    check_outputs(ref.double(), sd, arch, fused=False)


def test_converted_checkpoint_loads_through_init_cfg(tmp_path):
    src = tmp_path / 'apple.pth.tar'
    ref = apple_model('s1')
    torch.save(ref.state_dict(), src)
    dst = tmp_path / 'out' / 'mobileone_s1.pth'
    convert_file(str(src), str(dst))
    model = MobileOne('s1', init_cfg=dict(type='Pretrained', checkpoint=str(dst),
                                          prefix='backbone.'))
    model.init_weights()
    torch.testing.assert_close(model.stem.conv_kxk[0].conv.weight,
                               ref.stage0.rbr_conv[0].conv.weight)
    torch.testing.assert_close(model.stage4[1].conv_kxk[0].bn.running_mean,
                               ref.stage4[1].rbr_conv[0].bn.running_mean)


def test_partial_checkpoint_names_missing_keys_and_writes_nothing(tmp_path):
    sd = apple_model('s0').state_dict()
    del sd['stage2.3.rbr_conv.1.bn.running_var']
    src = tmp_path / 'partial.pth.tar'
    torch.save(sd, src)
    dst = tmp_path / 'out.pth'
    proc = run_tool(src, dst)
    assert proc.returncode != 0
    assert 'stage2.3.conv_kxk.1.bn.running_var' in proc.stderr
    assert 'missing' in proc.stderr and 'Traceback' not in proc.stderr
    assert not dst.exists()


def test_shape_mismatch_is_reported(tmp_path):
    sd = apple_model('s0').state_dict()
    sd['stage1.0.rbr_conv.0.conv.weight'] = torch.zeros(48, 1, 5, 5)
    with pytest.raises(ConversionError, match='shape mismatches'):
        from mobileone_mm.checkpoint import validate
        validate(convert(sd, 'apple'))


def test_corrupt_and_foreign_files(tmp_path):
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'not a checkpoint at all' * 10)
    proc = run_tool(corrupt, tmp_path / 'x.pth')
    assert proc.returncode != 0
    assert proc.stderr.strip().startswith('error:') and 'Traceback' not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

    foreign = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1)}, foreign)
    proc = run_tool(foreign, tmp_path / 'y.pth')
    assert proc.returncode != 0 and 'unrecognised' in proc.stderr

    proc = run_tool(tmp_path / 'missing.pth', tmp_path / 'z.pth')
    assert proc.returncode != 0 and 'no such file' in proc.stderr


def test_refuses_to_overwrite_input(tmp_path):
    src = tmp_path / 'mobileone_s0_unfused.pth.tar'
    torch.save(apple_model('s0').state_dict(), src)
    before = src.read_bytes()
    proc = run_tool(src, src)
    assert proc.returncode != 0 and 'refusing to overwrite' in proc.stderr
    assert src.read_bytes() == before
