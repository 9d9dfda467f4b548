"""mobileone_mm.apis: configs and models from user files, with one-line
errors for what users hand in."""
import pytest
import torch
from mmengine.config import Config

from mobileone_mm.apis import build_model, input_shape_from_config, load_config
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError

BACKBONE_CFG = """default_scope = 'mmengine'
model = dict(type='mobileone_mm.MobileOne', arch='{arch}', init_cfg=None)
"""


def write_cfg(tmp_path, arch='s1'):
    path = tmp_path / f'{arch}.py'
    path.write_text(BACKBONE_CFG.format(arch=arch))
    return path


def test_load_config_reads_and_merges_options(tmp_path):
    cfg = load_config(str(write_cfg(tmp_path)), {'model.arch': 's2'})
    assert cfg.model.arch == 's2' and cfg.model.type == 'mobileone_mm.MobileOne'


def test_load_config_missing_file(tmp_path):
    missing = str(tmp_path / 'nope.py')
    with pytest.raises(UserError, match=f'^config not found: {missing}$'):
        load_config(missing)


def test_load_config_broken_file_is_one_line(tmp_path):
    broken = tmp_path / 'broken.py'
    broken.write_text('model = dict(type=\n')
    with pytest.raises(UserError) as err:
        load_config(str(broken))
    message = str(err.value)
    assert message.startswith(f'cannot load config {broken}: ')
    assert len(message.splitlines()) == 1


def test_load_config_bad_cfg_options(tmp_path):
    path = write_cfg(tmp_path)
    with pytest.raises(UserError, match=f'--cfg-options do not fit {path}'):
        load_config(str(path), {'model.arch.widths': (1, 2)})  # arch is a str


def test_build_model_strict_checkpoint(tmp_path):
    cfg = Config.fromfile(str(write_cfg(tmp_path, 's1')))
    model = build_model(cfg)
    assert type(model) is MobileOne and model.arch_name == 's1'
    assert not model.training
    good = tmp_path / 's1.pth'
    torch.manual_seed(0)
    src = MobileOne('s1')
    torch.save({'state_dict': src.state_dict()}, good)
    loaded = build_model(cfg, str(good))
    torch.testing.assert_close(loaded.stem.conv_kxk[0].conv.weight,
                               src.stem.conv_kxk[0].conv.weight)
    wrong = tmp_path / 's0.pth'
    torch.save({'state_dict': MobileOne('s0').state_dict()}, wrong)
    with pytest.raises(UserError, match=f'{wrong} does not fit the model of'):
        build_model(cfg, str(wrong))
    with pytest.raises(UserError, match='checkpoint not found: nope.pth'):
        build_model(cfg, 'nope.pth')


@pytest.mark.parametrize('cfg, shape', [
    (dict(input_size=320), (1, 3, 320, 320)),
    (dict(crop_size=(512, 256), img_scale=(9, 9)), (1, 3, 512, 256)),
    (dict(input_size=160, crop_size=(512, 512)), (1, 3, 160, 160)),
    (dict(img_scale=[128, 96]), (1, 3, 128, 96)),
    (dict(), (1, 3, 224, 224)),
])
def test_input_shape_from_config(cfg, shape):
    assert input_shape_from_config(Config(cfg)) == shape
