"""The strict proof of a converted checkpoint (mobileone_mm/checkpoint/validate.py)."""
import pytest
import torch

from mobileone_mm.checkpoint import ConversionError, closest_variant, convert
from mobileone_mm.checkpoint.validate import convert_file, validate
from mobileone_mm.models import MobileOne

from ..utils import apple_model


def test_shape_mismatch_is_reported(tmp_path):
    sd = apple_model('s0').state_dict()
    sd['stage1.0.rbr_conv.0.conv.weight'] = torch.zeros(48, 1, 5, 5)
    with pytest.raises(ConversionError, match='of another shape .*against the closest'):
        validate(convert(sd, 'apple'))


@pytest.mark.parametrize('arch,fused', [('s0', False), ('s2', True)])
def test_validate_names_the_variant_and_head(arch, fused):
    model = MobileOne(arch, deploy=fused, init_cfg=None)
    sd = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    sd['head.fc.weight'] = torch.zeros(10, model.arch['widths'][-1])
    sd['head.fc.bias'] = torch.zeros(10)
    assert validate(sd) == dict(arch=arch, fused=fused, num_classes=10)
    backbone = {k[len('backbone.'):]: v for k, v in sd.items()
                if k.startswith('backbone.')}
    assert closest_variant(backbone, MobileOne) == (arch, fused, ([], [], []))


def test_incomplete_and_foreign_weights_are_refused():
    sd = {f'backbone.{k}': v for k, v in
          MobileOne('s1', init_cfg=None).state_dict().items()}
    del sd['backbone.stage4.1.conv_kxk.0.conv.weight']
    with pytest.raises(ConversionError, match=r'does not fit any MobileOne '
                       r'variant: 1 missing from the file \(stage4.1.conv_kxk.0.'
                       r'conv.weight\) against the closest, MobileOne-S1 '
                       r'\(unfused\). The file holds an incomplete MobileOne-S1 '
                       r'\(unfused\) backbone. Fix: convert a complete'):
        validate(sd)
    with pytest.raises(ConversionError, match='outside backbone/head'):
        validate({'neck.conv.weight': torch.zeros(1)})


def test_convert_file_writes_only_a_valid_result(tmp_path):
    src, dst = tmp_path / 'apple.pth', tmp_path / 'ours.pth'
    torch.save(apple_model('s0').state_dict(), src)
    meta = convert_file(str(src), str(dst))
    assert (meta['arch'], meta['fused'], meta['src_format']) == ('s0', False,
                                                                'apple')
    with pytest.raises(ConversionError, match='refusing to overwrite'):
        convert_file(str(src), str(src))
    assert not list(tmp_path.glob('*.tmp*'))
