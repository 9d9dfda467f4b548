"""No code runs from a checkpoint: every tool that takes one, through its
command line (tools/test.py as a real process, the others in this one),
refuses a file whose unpickling would run a command, with one
``error:`` line naming the file, and the command never runs."""
import subprocess
import sys

import pytest
import torch

from mobileone_mm.apis import build_model

from ..conftest import ROOT, subprocess_env
from ..test_detection.test_ssdlite import SHAPES_CFG, shapes_cfg, shapes_options
from ..utils import run_cli
from .payload import code_checkpoint

DEPLOY_CFG = ROOT / 'configs' / 'deploy' / 'ssdlite_onnxruntime_static-320x320.py'


def pretrained_config(tmp_path, checkpoint) -> str:
    """The shapes detection config with the backbone initialised from
    ``checkpoint`` (``Pretrained``, prefix ``backbone.``)."""
    cfg = tmp_path / 'pretrained_cfg.py'
    cfg.write_text(
        f"_base_ = ['{SHAPES_CFG}']\n"
        "model = dict(backbone=dict(init_cfg=dict(_delete_=True, "
        f"type='Pretrained', checkpoint='{checkpoint}', prefix='backbone.')))\n")
    return str(cfg)


# tool -> its arguments (the checkpoint, a work dir, the shapes data set)
TOOLS = {
    'convert_checkpoint': lambda ckpt, work, data: (
        'convert_checkpoint.py', ckpt, work / 'converted.pth'),
    'test': lambda ckpt, work, data: (
        'test.py', SHAPES_CFG, ckpt, '--work-dir', work, '--cfg-options',
        *shapes_options(data)),
    'train --resume': lambda ckpt, work, data: (
        'train.py', SHAPES_CFG, '--resume', ckpt, '--work-dir', work,
        '--cfg-options', *shapes_options(data)),
    'reparameterize': lambda ckpt, work, data: (
        'reparameterize.py', SHAPES_CFG, ckpt, work / 'fused.pth'),
    'deploy': lambda ckpt, work, data: (
        'deploy.py', SHAPES_CFG, ckpt, '--work-dir', work, '--backends',
        'onnx', '--runs', '1'),
    'mmdeploy_convert': lambda ckpt, work, data: (
        'mmdeploy_convert.py', DEPLOY_CFG, SHAPES_CFG, ckpt, '--work-dir',
        work),
    'train with a Pretrained backbone': lambda ckpt, work, data: (
        'train.py', pretrained_config(work.parent, ckpt), '--work-dir', work,
        '--cfg-options', *shapes_options(data)),
}


@pytest.fixture(scope='module')
def weights(shapes_root):
    """The shapes detector's state dict: with these weights every tool
    would accept the file if it unpickled it."""
    torch.manual_seed(0)
    return build_model(shapes_cfg(shapes_root)).state_dict()


def test_the_payload_is_live(tmp_path, weights):
    """The crafted file does run its command when unpickled as code, so
    the tests below would see it."""
    marker = tmp_path / 'MARKER'
    path = code_checkpoint(tmp_path / 'epoch_1.pth', marker, weights)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize('tool', sorted(TOOLS))
def test_tool_refuses_a_checkpoint_that_runs_code(tool, tmp_path, weights,
                                                  shapes_root):
    marker = tmp_path / 'MARKER'
    ckpt = code_checkpoint(tmp_path / 'epoch_1.pth', marker, weights)
    script, *args = TOOLS[tool](ckpt, tmp_path / 'work', shapes_root)
    if tool == 'test':  # one as a real process, the others in this one
        proc = subprocess.run(
            [sys.executable, str(ROOT / 'tools' / script), *map(str, args)],
            capture_output=True, text=True, cwd=ROOT, env=subprocess_env())
    else:
        proc = run_cli(ROOT / 'tools' / script, *args, cwd=ROOT)
    assert not marker.exists(), f'{tool} ran the checkpoint\'s code'
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines()
              if line.startswith('error:')]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert str(ckpt) in errors[0]
    assert 'posix.system, which is code, not data' in errors[0]
    assert errors[0] == proc.stderr.strip().splitlines()[-1]
