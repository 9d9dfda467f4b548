"""mobileone_mm.checkpoint.formats in process: Apple, mmpretrain and timm
checkpoints map key for key and give the source model's outputs."""
import pickle

import pytest
import timm
import torch
from safetensors.torch import save_file

from mobileone_mm.checkpoint import (ConversionError, convert, detect_format,
                                     load_file, unwrap)
from mobileone_mm.checkpoint.validate import convert_file
from mobileone_mm.models import MobileOne

from ..utils import apple_model, check_outputs, randomize_bn


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
    torch.manual_seed(0)
    ref = timm.create_model(f'mobileone_{arch}', pretrained=False,
                            num_classes=5).eval()
    randomize_bn(ref)
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


class _NotData:
    """A pickled object that is code, not tensors."""


def test_load_file_reads_data_only(tmp_path):
    tensors = {'stage0.rbr_conv.0.conv.weight': torch.rand(2, 3, 3, 3)}
    pth, st = tmp_path / 'a.pth', tmp_path / 'a.safetensors'
    torch.save({'state_dict': tensors}, pth)
    save_file(tensors, str(st))
    for path, inner in ((pth, lambda c: c['state_dict']), (st, lambda c: c)):
        loaded = inner(load_file(str(path)))
        assert loaded.keys() == tensors.keys()
        torch.testing.assert_close(next(iter(loaded.values())),
                                   next(iter(tensors.values())), rtol=0, atol=0)
    code = tmp_path / 'code.pth'
    torch.save({'state_dict': tensors, 'hook': _NotData()}, code)
    with pytest.raises(ConversionError, match='cannot read as a checkpoint'):
        load_file(str(code))  # weights_only: no arbitrary classes
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(pickle.dumps('text') * 3)
    with pytest.raises(ConversionError, match=f'{corrupt}: cannot read'):
        load_file(str(corrupt))
    with pytest.raises(ConversionError, match='no such file'):
        load_file(str(tmp_path / 'missing.pth'))


def test_unwrap_and_detect_format_say_what_is_wrong():
    w = torch.zeros(1)
    assert unwrap({'model': {'module.stage0.x': w}}) == {'stage0.x': w}
    assert unwrap({'state_dict_ema': {'a': w}}) == {'a': w}
    with pytest.raises(ConversionError, match='no state dict of tensors'):
        unwrap({'state_dict': {'epoch': 3}})
    with pytest.raises(ConversionError, match='already has mobileone_mm keys'):
        detect_format({'backbone.stem.conv_kxk.0.conv.weight': w})
    with pytest.raises(ConversionError, match='unrecognised'):
        detect_format({'conv1.weight': w})
    with pytest.raises(ConversionError, match="unknown source format 'caffe'"):
        convert({'stage0.x': w}, 'caffe')
    with pytest.raises(ConversionError, match='1 keys are not apple'):
        convert({'stage0.x': w, 'fc.weight': w}, 'apple')
