"""mobileone_mm.engine.launch in process: what tools/train.py and
tools/test.py do before the runner starts (work dir, --amp, fused
evaluation, checks of the data and the ImageNet checkpoint)."""
import argparse

import pytest
from mmengine.config import Config

from mobileone_mm.engine import MissingDataError
from mobileone_mm.engine.launch import (_work_dir, add_common_args,
                                        add_fused_eval, check_pretrained,
                                        enable_amp, train)
from mobileone_mm.engine.launch import test as run_test
from mobileone_mm.utils.errors import UserError

from ..conftest import ROOT

SEG = ROOT / 'configs' / 'segmentation'
DET_SHAPES = ROOT / 'configs' / 'detection' / 'ssdlite_mobileone_s0_shapes.py'


def test_missing_ade20k_names_the_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingDataError) as err:
        train(str(SEG / 'deeplabv3_mobileone_s2_ade20k.py'), work_dir=str(tmp_path / 'w'))
    message = str(err.value)
    assert 'data/ade/ADEChallengeData2016/images/training' in message
    assert 'expected layout for ADE20KDataset' in message
    assert 'annotations/{training,validation}/*.png' in message


@pytest.mark.parametrize('arch', ['s2', 's4'])
def test_missing_pretrained_names_the_variant(arch):
    cfg = Config.fromfile(str(SEG / f'deeplabv3_mobileone_{arch}_voc.py'))
    with pytest.raises(UserError, match=f'mobileone_{arch}_unfused.pth.tar'):
        check_pretrained(cfg)


def test_check_pretrained_passes_when_there_is_nothing_to_load(tmp_path):
    ckpt = tmp_path / 'in1k.pth'
    ckpt.write_bytes(b'')
    for init_cfg in (None, dict(type='Pretrained', checkpoint=str(ckpt)),
                     dict(type='Pretrained', checkpoint='https://x/y.pth')):
        check_pretrained(Config(dict(model=dict(backbone=dict(
            type='MobileOne', arch='s1', init_cfg=init_cfg)))))
    check_pretrained(Config(dict(model=dict(type='Toy'))))  # no backbone
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(UserError, match='init_cfg=None') as err:
        check_pretrained(Config(dict(model=dict(backbone=dict(
            arch='s1', init_cfg=dict(type='Pretrained', checkpoint=missing))))))
    assert f'checkpoint not found: {missing}' in str(err.value)


def test_work_dir_precedence():
    cfg = Config(dict(work_dir='from/config'))
    assert _work_dir(cfg, 'configs/a/b.py', 'from/cli') == 'from/cli'
    assert _work_dir(cfg, 'configs/a/b.py', None) == 'from/config'
    assert _work_dir(Config(), 'configs/a/b.py', None) == './work_dirs/b'


def test_add_fused_eval_replaces_and_does_not_duplicate():
    cfg = Config(dict(custom_hooks=[dict(type='EMAHook'),
                                    dict(type='FusedEvalHook', val=True)]))
    add_fused_eval(cfg, val=False, test=True)
    add_fused_eval(cfg, val=False, test=True)
    assert [h['type'] for h in cfg.custom_hooks] == [
        'EMAHook', 'mobileone_mm.FusedEvalHook']
    assert (cfg.custom_hooks[1]['val'], cfg.custom_hooks[1]['test']) == (False, True)
    empty = Config(dict(custom_hooks=None))
    add_fused_eval(empty)
    assert empty.custom_hooks == [dict(type='mobileone_mm.FusedEvalHook',
                                       val=True, test=True)]


def test_amp_on_cpu_is_a_user_error(monkeypatch):
    monkeypatch.setattr('mmengine.device.get_device', lambda: 'cpu')
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper')))
    with pytest.raises(UserError, match='--amp needs a GPU'):
        enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'OptimWrapper'


def test_amp_on_a_gpu_switches_the_optim_wrapper(monkeypatch):
    monkeypatch.setattr('mmengine.device.get_device', lambda: 'cuda')
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD'))))
    enable_amp(cfg)
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.loss_scale) == (
        'AmpOptimWrapper', 'dynamic')
    amp = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper', loss_scale=512.)))
    enable_amp(amp)
    assert amp.optim_wrapper.loss_scale == 512.  # the config's own kept
    other = Config(dict(optim_wrapper=dict(type='ApexOptimWrapper')))
    with pytest.raises(UserError, match='config has ApexOptimWrapper'):
        enable_amp(other)


def test_train_and_test_refuse_bad_arguments_before_any_work(tmp_path):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("optim_wrapper = dict(type='OptimWrapper')\n")
    with pytest.raises(UserError, match='resume from not found: nope.pth'):
        train(str(cfg), work_dir=str(tmp_path / 'w'), resume='nope.pth')
    with pytest.raises(UserError, match='--auto-scale-lr needs'):
        train(str(cfg), work_dir=str(tmp_path / 'w'), auto_scale_lr=True)
    with pytest.raises(UserError, match='checkpoint not found: nope.pth'):
        run_test(str(DET_SHAPES), 'nope.pth')
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'')
    with pytest.raises(UserError, match='--out must be a .pkl'):
        run_test(str(DET_SHAPES), str(ckpt), work_dir=str(tmp_path / 'w'),
             out=str(tmp_path / 'out.json'))
    assert not (tmp_path / 'w').exists()


def test_common_args():
    parser = argparse.ArgumentParser()
    add_common_args(parser)
    args = parser.parse_args(['--work-dir', 'w', '--cfg-options', 'a.b=1',
                              'c=x', '--launcher', 'pytorch', '--local-rank', '2'])
    assert (args.work_dir, args.launcher, args.local_rank) == ('w', 'pytorch', 2)
    assert args.cfg_options == {'a.b': 1, 'c': 'x'}
    with pytest.raises(SystemExit):
        parser.parse_args(['--launcher', 'ray'])
