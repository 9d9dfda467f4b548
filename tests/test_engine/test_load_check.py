"""mobileone_mm.engine.load_check: a checkpoint is compared with the model
(keys and shapes) before it loads, and a mismatch says why and what to do."""
import pytest
import torch
import torch.nn as nn

from mobileone_mm.engine.load_check import (check_fit, model_shapes,
                                            weight_shapes)
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError


class Detector(nn.Module):
    def __init__(self, arch='s0', deploy=False, classes=3):
        super().__init__()
        with torch.device('meta'):
            self.backbone = MobileOne(arch, deploy=deploy, init_cfg=None)
            self.bbox_head = nn.Conv2d(1024, classes, 1)


def shapes(model):
    return model_shapes(model)


def test_a_checkpoint_of_the_same_model_fits():
    assert check_fit(Detector(), shapes(Detector()), 'x.pth', 'cfg.py') == []


def test_another_variant_is_refused_with_keys_and_fix():
    with pytest.raises(UserError) as err:
        check_fit(Detector('s2'), shapes(Detector('s0')), 's0.pth', 's2.py')
    message = str(err.value)
    assert '\n' not in message
    assert message.startswith('s0.pth does not fit the model of s2.py: ')
    assert 'backbone.stage1.0.conv_kxk.1.conv.weight' in message  # S0 has 4
    assert ('backbone.stem.conv_kxk.0.conv.weight: (48, 3, 3, 3) in the file, '
            '(64, 3, 3, 3) in the model') in message
    assert 'another variant or head' in message and '--partial-load' in message


def test_fused_checkpoint_in_an_unfused_config_names_the_fused_config(tmp_path):
    deploy_cfg = tmp_path / 'det_deploy.py'
    with pytest.raises(UserError) as err:
        check_fit(Detector(), shapes(Detector(deploy=True)), 'f.pth',
                  str(tmp_path / 'det.py'))
    assert 'missing from the file (backbone.stem.conv_kxk.0.conv.weight' in str(err.value)
    assert 'holds a fused (re-parameterized) MobileOne' in str(err.value)
    assert 'model.backbone.deploy=True' in str(err.value)
    assert '--partial-load' not in str(err.value)  # meaningless here
    deploy_cfg.write_text('')
    with pytest.raises(UserError, match=f'use {deploy_cfg}$'):
        check_fit(Detector(), shapes(Detector(deploy=True)), 'f.pth',
                  str(tmp_path / 'det.py'))


def test_unfused_checkpoint_in_a_fused_config():
    with pytest.raises(UserError) as err:
        check_fit(Detector(deploy=True), shapes(Detector()), 'u.pth',
                  'configs/x_deploy.py')
    assert 'not in the model (backbone.stem.conv_kxk.0.conv.weight' in str(err.value)
    assert 'use configs/x.py (tools/test.py --deploy evaluates it fused)' in str(err.value)
    assert 'tools/reparameterize.py' in str(err.value)


def test_another_task_and_resume_wording():
    classifier = {k: v for k, v in shapes(Detector()).items()
                  if k.startswith('backbone.')}
    classifier['head.fc.weight'] = (1000, 1024)
    with pytest.raises(UserError) as err:
        check_fit(Detector(), classifier, 'cls.pth', 'det.py', resume=True)
    message = str(err.value)
    assert 'missing from the file (bbox_head.weight, bbox_head.bias)' in message
    assert ('another model or task (modules backbone, head; the config has '
            'backbone, bbox_head)') in message
    assert "model.backbone.init_cfg (type Pretrained, prefix 'backbone.')" in message
    assert message.endswith('resume from a checkpoint of this config (or '
                            'fine-tune from it: --cfg-options load_from=cls.pth '
                            '--partial-load)')


def test_partial_load_says_what_is_not_loaded(capsys):
    skipped = check_fit(Detector(classes=5), shapes(Detector()), 'old.pth',
                        'new.py', partial=True)
    assert skipped == ['bbox_head.weight', 'bbox_head.bias']
    err = capsys.readouterr().err
    total = len(shapes(Detector()))
    assert err == (f'warning: --partial-load: {total - 2} of {total} model '
                   'weights loaded from old.pth; 2 not loaded (left as '
                   'initialised): bbox_head.weight, bbox_head.bias; 0 '
                   'checkpoint weights not used\n')


def test_weight_shapes_reads_what_mmengine_loads():
    ckpt = dict(state_dict={'module.a': torch.zeros(2, 3), 'b': torch.zeros(1)},
                meta=dict(epoch=1))
    assert weight_shapes(ckpt, 'x.pth') == {'a': (2, 3), 'b': (1, )}
    assert weight_shapes({'a': torch.zeros(1)}, 'x.pth') == {'a': (1, )}
    for bad in ({}, {'state_dict': {'a': 1}}, {'state_dict': [1]}):
        with pytest.raises(UserError, match='x.pth holds no state dict of tensors'):
            weight_shapes(bad, 'x.pth')
