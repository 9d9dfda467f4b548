import subprocess
import sys
import textwrap

import pytest
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope

from mobileone_mm.models import MobileOne


def _registry(scope):
    if scope == 'mmengine':
        return ROOT_MODELS
    module = __import__(f'{scope}.registry', fromlist=['MODELS'])
    return module.MODELS


@pytest.mark.parametrize('scope', ['mmengine', 'mmdet', 'mmseg', 'mmpretrain'])
def test_scoped_name_builds_ours_everywhere(scope):
    model = _registry(scope).build(dict(type='mobileone_mm.MobileOne', arch='s1'))
    assert type(model) is MobileOne
    assert model.arch['widths'] == (96, 192, 512, 1280)


@pytest.mark.parametrize('scope', ['mmengine', 'mmdet', 'mmseg'])
def test_plain_name_builds_ours(scope):
    with DefaultScope.overwrite_default_scope(scope):
        model = _registry(scope).build(dict(type='MobileOne', arch='s0'))
    assert type(model) is MobileOne


def test_plain_name_in_mmpretrain_is_its_own_model():
    # Why our classification configs say type='mobileone_mm.MobileOne'.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = _registry('mmpretrain').build(dict(type='MobileOne', arch='s0'))
    assert type(model) is not MobileOne
    assert type(model).__module__.startswith('mmpretrain')


def test_custom_imports_is_all_a_config_needs(tmp_path):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(textwrap.dedent("""
        custom_imports = dict(imports=['mobileone_mm'], allow_failed_imports=False)
        default_scope = 'mmdet'
        model = dict(type='MobileOne', arch='s2', out_indices=(2, 3))
    """))
    code = textwrap.dedent(f"""
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmdet.registry import MODELS
        cfg = Config.fromfile({str(cfg)!r})
        init_default_scope(cfg.default_scope)
        m = MODELS.build(cfg.model)
        print(type(m).__module__, m.out_channels)
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout
    assert out.split()[0] == 'mobileone_mm.models.backbones.mobileone'
    assert '[640, 2048]' in out
