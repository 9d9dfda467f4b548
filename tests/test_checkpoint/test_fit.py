"""mobileone_mm.checkpoint.fit: the one check that a checkpoint fits a model
(keys and shapes) before it loads; a mismatch says, in one line and one
style, the file's variant, form and task, the config's, and the fix."""
import pytest
import torch
import torch.nn as nn

from mobileone_mm.checkpoint.fit import (check_fit, describe, runner_state,
                                         shapes_of)
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError


class Detector(nn.Module):
    def __init__(self, arch='s0', deploy=False, classes=3):
        super().__init__()
        with torch.device('meta'):
            self.backbone = MobileOne(arch, deploy=deploy, init_cfg=None)
            self.bbox_head = nn.Conv2d(1024, classes, 1)


def shapes(model):
    return shapes_of(model.state_dict())


def test_a_checkpoint_of_the_same_model_fits():
    assert check_fit(shapes(Detector()), shapes(Detector()), 'x.pth', 'cfg.py') == []


def test_another_variant_is_refused_with_keys_and_fix():
    with pytest.raises(UserError) as err:
        check_fit(shapes(Detector('s2')), shapes(Detector('s0')), 's0.pth', 's2.py')
    message = str(err.value)
    assert '\n' not in message
    assert message.startswith('s0.pth does not fit the model of s2.py: ')
    assert 'backbone.stage1.0.conv_kxk.1.conv.weight' in message  # S0 has 4
    assert ('backbone.stem.conv_kxk.0.conv.weight: (48, 3, 3, 3) in the file, '
            '(64, 3, 3, 3) in the model') in message
    assert ('The file holds a MobileOne-S0 (unfused) detector; the config '
            'builds a MobileOne-S2 (unfused) detector. Fix: use a '
            "MobileOne-S0 config for it (model.backbone.arch='s0'") in message
    assert '--partial-load' in message


def test_fused_checkpoint_in_an_unfused_config_names_the_fused_config(tmp_path):
    deploy_cfg = tmp_path / 'det_deploy.py'
    with pytest.raises(UserError) as err:
        check_fit(shapes(Detector()), shapes(Detector(deploy=True)), 'f.pth',
                  str(tmp_path / 'det.py'))
    assert 'missing from the file (backbone.stem.conv_kxk.0.conv.weight' in str(err.value)
    assert 'The file holds a MobileOne-S0 (fused) detector' in str(err.value)
    assert 'a fused (re-parameterized) file is for inference' in str(err.value)
    assert 'model.backbone.deploy=True' in str(err.value)
    assert '--partial-load' not in str(err.value)  # meaningless here
    deploy_cfg.write_text('')
    with pytest.raises(UserError, match=f'build the fused network '
                       f'\\({deploy_cfg}\\)'):
        check_fit(shapes(Detector()), shapes(Detector(deploy=True)), 'f.pth',
                  str(tmp_path / 'det.py'))


def test_unfused_checkpoint_in_a_fused_config():
    with pytest.raises(UserError) as err:
        check_fit(shapes(Detector(deploy=True)), shapes(Detector()), 'u.pth',
                  'configs/x_deploy.py')
    assert 'not in the model (backbone.stem.conv_kxk.0.conv.weight' in str(err.value)
    assert 'use configs/x.py (tools/test.py --deploy evaluates it fused)' in str(err.value)
    assert 'tools/reparameterize.py' in str(err.value)


def test_another_task_and_resume_wording():
    classifier = {k: v for k, v in shapes(Detector()).items()
                  if k.startswith('backbone.')}
    classifier['head.fc.weight'] = (1000, 1024)
    with pytest.raises(UserError) as err:
        check_fit(shapes(Detector()), classifier, 'cls.pth', 'det.py',
                  resume=True)
    message = str(err.value)
    assert 'missing from the file (bbox_head.weight, bbox_head.bias)' in message
    assert ('The file holds a MobileOne-S0 (unfused) classifier; the config '
            'builds a MobileOne-S0 (unfused) detector. Fix: use the config '
            'the file was trained with') in message
    assert "model.backbone.init_cfg (type Pretrained, prefix 'backbone.')" in message
    assert message.endswith('or resume from a checkpoint of this config (or '
                            'fine-tune from it: --cfg-options load_from=cls.pth '
                            '--partial-load)')


def test_partial_load_says_what_is_not_loaded(capsys):
    skipped = check_fit(shapes(Detector(classes=5)), shapes(Detector()),
                        'old.pth', 'new.py', partial=True)
    assert skipped == ['bbox_head.weight', 'bbox_head.bias']
    err = capsys.readouterr().err
    total = len(shapes(Detector()))
    assert err == (f'warning: --partial-load: {total - 2} of {total} model '
                   'weights loaded from old.pth; 2 not loaded (left as '
                   'initialised): bbox_head.weight, bbox_head.bias; 0 '
                   'checkpoint weights not used\n')


def test_runner_state_reads_what_mmengine_loads():
    ckpt = dict(state_dict={'module.a': torch.zeros(2, 3), 'b': torch.zeros(1)},
                meta=dict(epoch=1))
    assert shapes_of(runner_state(ckpt, 'x.pth')) == {'a': (2, 3), 'b': (1, )}
    assert shapes_of(runner_state({'a': torch.zeros(1)}, 'x.pth')) == {'a': (1, )}
    for bad in ({}, {'state_dict': {'a': 1}}, {'state_dict': [1]},
                {'model': {'a': torch.zeros(1)}, 'epoch': 1}):
        with pytest.raises(UserError, match='x.pth holds no state dict of tensors'):
            runner_state(bad, 'x.pth')


def test_describe_names_variant_form_and_task():
    det = shapes(Detector('s1', deploy=True))
    assert describe(det) == 'a MobileOne-S1 (fused) detector'
    seg = {k.replace('bbox_head', 'decode_head'): v for k, v in det.items()}
    assert describe(seg) == 'a MobileOne-S1 (fused) segmentor'
    part = {k: v for k, v in det.items() if 'stage4' not in k}
    assert describe(part) == 'an incomplete MobileOne-S1 (fused) detector'
    assert describe({'fc.weight': (2, 3)}) == 'no MobileOne weights (modules fc)'


def test_every_tool_uses_the_one_check():
    """The train/test launcher, apis.build_model (deploy, reparameterize,
    quantize) and mmdeploy conversion call this function, not their own."""
    from mobileone_mm import apis
    from mobileone_mm.checkpoint import fit
    from mobileone_mm.deploy import mmdeploy_compat
    from mobileone_mm.engine import launch
    for module in (apis, launch, mmdeploy_compat):
        assert module.check_fit is fit.check_fit, module.__name__
