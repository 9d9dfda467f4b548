"""Configs, models and checks shared by the deploy tests."""
import builtins

import pytest
import torch

from mobileone_mm.apis import build_model, load_config
from mobileone_mm.deploy.model_setup import calibrate_bn
from mobileone_mm.models import MobileOne

from ..conftest import ROOT

CONFIGS = ROOT / 'configs'
DET_S0 = CONFIGS / 'detection' / 'ssdlite_mobileone_s0.py'
DET_S1 = CONFIGS / 'detection' / 'ssdlite_mobileone_s1.py'
CLS_S0 = CONFIGS / 'classification' / 'mobileone_s0_in1k.py'
CLS_S4 = CONFIGS / 'classification' / 'mobileone_s4_in1k.py'
SEG_S0 = CONFIGS / 'segmentation' / 'deeplabv3_mobileone_s0_voc.py'
# A fused S0-S4 backbone: stem + 2 x (2 + 8 + 10 + 1) blocks, paper Table 2.
S0_BLOCKS = 43
# S4 adds SE-ReLU (2 convs each) on the last 5 pairs of stage 3 and the pair
# of stage 4: 12 SE blocks.
S4_CONVS = S0_BLOCKS + 2 * 12
# One block pair per stage, SE on the pairs of stages 3 and 4 (4 SE blocks):
# small, and its SE convs come before the block's conv in module order but
# after it in the program.
TINY_SE_ARCH = dict(num_blocks=(1, 1, 1, 1), widths=(16, 32, 32, 64),
                    num_conv_branches=(2, 2, 2, 2), num_se_blocks=(0, 0, 1, 1))


def trained_like_checkpoint(config, path, size=224):
    """A checkpoint with realistic BN statistics (a few train-mode passes),
    standing in for a trained model: its outputs have a sane scale, so
    absolute differences mean something."""
    cfg = load_config(str(config))
    torch.manual_seed(0)
    model = calibrate_bn(build_model(cfg), (1, 3, size, size))
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def fused_backbone(arch='s0'):
    """A fused MobileOne with BN statistics from random batches, all four
    stages out."""
    torch.manual_seed(0)
    model = MobileOne(arch, out_indices=(0, 1, 2, 3))
    calibrate_bn(model, (1, 3, 64, 64))
    model.switch_to_deploy()
    return model.eval()


def check_latency(stats, runs):
    assert stats['runs'] == runs
    assert 0 < stats['min'] <= stats['median'] <= stats['p90']


class RunsCode:
    """Unpickling this creates ``marker``: a stand-in for a checkpoint that
    runs code when loaded without ``weights_only``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


def code_running_checkpoint(path, marker):
    """A checkpoint whose unpickling would create ``marker``. Proven to: the
    same payload aimed at another marker, loaded with ``weights_only=False``,
    does create that one."""
    def payload(target):
        return dict(state_dict={'backbone.stem.reparam_conv.weight':
                                torch.zeros(1)}, meta=RunsCode(target))

    twin, probe = path.with_name('twin.pth'), marker.with_name('probe')
    torch.save(payload(probe), twin)
    torch.load(twin, weights_only=False)['meta'].close()
    assert probe.exists(), 'the payload must really run code when unpickled'
    probe.unlink()
    twin.unlink()
    torch.save(payload(marker), path)
    return path


@pytest.fixture
def no_coremltools(monkeypatch):
    """``import coremltools`` fails, as where it is not installed."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == 'coremltools':
            raise ImportError('No module named coremltools')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', fake_import)
