"""tools/mmdeploy_convert.py as a user runs it: a checkpoint that does not
fit the model config stops before mmdeploy (which would load it partly)
with one line naming a few keys of each kind of mismatch."""

import pytest
import torch

from mobileone_mm.apis import build_model, load_config
from mobileone_mm.deploy import reparameterize

from ..conftest import ROOT
from ..utils import run_cli

MODEL_CFG = ROOT / 'configs' / 'detection' / 'ssdlite_mobileone_s0_shapes.py'
DEPLOY_CFG = ROOT / 'configs' / 'deploy' / 'ssdlite_onnxruntime_static-320x320.py'


def run_tool(*args):
    return run_cli(ROOT / 'tools' / 'mmdeploy_convert.py', *args, cwd=ROOT)


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return build_model(load_config(str(MODEL_CFG)))


def altered(state: dict) -> dict:
    """One key dropped, one added, one of another shape."""
    state = dict(state)
    del state['backbone.stem.conv_kxk.0.bn.running_var']
    state['neck.extra.weight'] = torch.zeros(1)
    state['bbox_head.cls_convs.0.0.conv.weight'] = torch.zeros(1, 1, 3, 3)
    return state


@pytest.mark.parametrize('kind', ['altered', 'fused'])
def test_checkpoint_that_does_not_fit_stops_before_mmdeploy(kind, model,
                                                            tmp_path):
    state = (altered(model.state_dict()) if kind == 'altered' else
             reparameterize(model).state_dict())
    ckpt = tmp_path / f'{kind}.pth'
    torch.save({'state_dict': state, 'meta': {}}, ckpt)
    work = tmp_path / 'work'
    proc = run_tool(DEPLOY_CFG, MODEL_CFG, ckpt, '--work-dir', work)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith(f'error: {ckpt} does not fit the model of '
                            f'{MODEL_CFG}: ')
    assert 'export random weights' in error
    if kind == 'altered':
        assert ('1 missing from the file (backbone.stem.conv_kxk.0.bn.'
                'running_var)') in error
        assert '1 not in the model (neck.extra.weight)' in error
        assert '1 of another shape (bbox_head.cls_convs.0.0.conv.weight: ' \
            '(1, 1, 3, 3) in the file' in error
    else:
        assert 'The file holds a MobileOne-S0 (fused) detector' in error
        assert 'deploy=True' in error
    assert not work.exists()  # mmdeploy never ran
