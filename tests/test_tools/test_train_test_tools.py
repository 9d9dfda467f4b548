"""tools/train.py and tools/test.py as a user meets them, through their
command lines (in this process; the killed run is a real process): crash-safe
training and resume, strict loading, refusal to train a fused network, and
one line with the fix (no traceback) for misuse."""
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from mobileone_mm import MobileOne, reparameterize
from mobileone_mm.apis import build_model
from mobileone_mm.models import LinearClassifier

from ..conftest import ROOT, subprocess_env
from ..test_detection.test_ssdlite import SHAPES_CFG, shapes_options
from ..utils import run_cli

TRAIN, TEST = ROOT / 'tools' / 'train.py', ROOT / 'tools' / 'test.py'
CLS = ROOT / 'configs' / 'classification'


def options(root, epochs=1):
    """The tiny shapes run, deterministic (no flip), every checkpoint kept."""
    return shapes_options(root, epochs) + [
        'train_dataloader.dataset.pipeline.3.prob=0.0',
        'randomness.deterministic=True',
        'default_hooks.checkpoint.max_keep_ckpts=-1']


def tool(script, *args, cwd):
    """The tool's command line, in this process (``run_cli``); the killed
    run below is the real process."""
    proc = run_cli(script, *args, cwd=cwd)
    return proc.returncode, proc.stdout + proc.stderr


def refusal(result) -> str:
    """The tool's error message, after checking how it stopped."""
    code, out = result
    assert code != 0, out[-3000:]
    assert 'Traceback' not in out, out[-3000:]
    assert '\nerror: ' in '\n' + out, out[-3000:]
    return out.rsplit('error: ', 1)[1].strip()


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def wait_for(condition, proc, timeout=600):
    end = time.time() + timeout
    while not condition():
        assert proc.poll() is None, 'training ended before it could be killed'
        assert time.time() < end, 'no checkpoint in time'
        time.sleep(0.05)


def assert_identical(a, b, where=''):
    """Every tensor and value of two (nested) states exactly equal."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f'{where}.{key}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f'{where}[{i}]')
    else:
        assert a == b, where


def test_killed_run_resumes_from_the_newest_checkpoint_that_loads(
        shapes_root, tmp_path):
    opts = options(shapes_root, epochs=3)
    work = tmp_path / 'run'
    with open(tmp_path / 'killed.log', 'w') as log:
        run = subprocess.Popen(
            [sys.executable, str(TRAIN), str(SHAPES_CFG), '--work-dir', str(work),
             '--cfg-options', *opts], stdout=log, stderr=subprocess.STDOUT,
            cwd=tmp_path, env=subprocess_env())
        try:  # kill it in epoch 3, once epoch 2 is saved and recorded
            record = work / 'last_checkpoint'
            wait_for(lambda: record.exists() and 'epoch_2' in record.read_text(), run)
            run.send_signal(signal.SIGKILL)
        finally:
            run.kill()
            run.wait()
    log = (tmp_path / 'killed.log').read_text()
    assert run.returncode == -signal.SIGKILL, log[-3000:]
    assert 'AtomicCheckpointHook' in log  # what train.py saves with
    assert not (work / 'epoch_3.pth').exists()
    newest, previous = work / 'epoch_2.pth', work / 'epoch_1.pth'
    truncate(newest)

    code, out = tool(TRAIN, SHAPES_CFG, '--work-dir', work, '--resume',
                     '--cfg-options', *opts, cwd=tmp_path)
    assert code == 0 and 'Traceback' not in out, out[-3000:]
    warnings = [line for line in out.splitlines() if line.startswith('warning:')]
    assert warnings == [f'warning: --resume: skipping {newest}: cannot be read '
                        '(RuntimeError): the file is truncated (an interrupted '
                        'write?) or not a PyTorch checkpoint']
    assert f'Load checkpoint from {previous}' in out
    assert 'resumed epoch: 1, iter: 2' in out

    # the reference: an uninterrupted run from the checkpoint resumed from
    ref = tmp_path / 'ref'
    ref.mkdir()
    shutil.copy(previous, ref / previous.name)
    code, out = tool(TRAIN, SHAPES_CFG, '--work-dir', ref, '--resume',
                     ref / previous.name, '--cfg-options', *opts, cwd=tmp_path)
    assert code == 0, out[-3000:]
    resumed, once = (torch.load(d / 'epoch_3.pth', weights_only=True)
                     for d in (work, ref))
    start = torch.load(previous, weights_only=True)['state_dict']
    assert any(not torch.equal(v, start[k]) for k, v in
               resumed['state_dict'].items()), 'training changed nothing'
    assert resumed['optimizer']['state'], 'no optimizer state saved'
    for key in ('state_dict', 'optimizer', 'param_schedulers'):
        assert_identical(resumed[key], once[key], key)
    assert (resumed['meta']['epoch'], resumed['meta']['iter']) == (3, 6)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """Checkpoints of the shapes detector and of other models, made without
    training (weights and the state a resume reads)."""
    folder = tmp_path_factory.mktemp('checkpoints')
    cfg = Config.fromfile(str(SHAPES_CFG))
    model = build_model(cfg)

    def keep(name, state):
        torch.save(dict(state_dict=state, meta=dict(epoch=1, iter=2),
                        message_hub={}), folder / name)

    keep('s0.pth', model.state_dict())
    keep('fused.pth', reparameterize(model).state_dict())
    keep('no_head.pth', {k: v for k, v in model.state_dict().items()
                         if not k.startswith('bbox_head.')})
    cfg.model.backbone.arch = 's2'
    keep('s2.pth', build_model(cfg).state_dict())
    keep('classifier.pth', LinearClassifier(MobileOne('s0'), 3).state_dict())
    return folder


@pytest.mark.parametrize('name, extra, expected', [
    ('s2.pth', [], 'backbone.stem.conv_kxk.0.conv.weight: (64, 3, 3, 3) in '
     'the file, (48, 3, 3, 3) in the model'),
    ('s2.pth', [], 'The file holds a MobileOne-S2 (unfused) detector; the '
     'config builds a MobileOne-S0 (unfused) detector. Fix: use a '
     "MobileOne-S2 config for it (model.backbone.arch='s2'"),
    ('fused.pth', [], 'The file holds a MobileOne-S0 (fused) detector; the '
     'config builds a MobileOne-S0 (unfused) detector. Fix: a fused '
     '(re-parameterized) file is for inference: build the fused network (the '
     f'*_deploy config, or {SHAPES_CFG} with --cfg-options '
     'model.backbone.deploy=True)'),
    ('s0.pth', ['model.backbone.deploy=True'], 'the config builds a '
     f'MobileOne-S0 (fused) detector. Fix: use {SHAPES_CFG} with '
     'model.backbone.deploy=False (tools/test.py --deploy evaluates it fused)'),
    ('classifier.pth', [], 'The file holds a MobileOne-S0 (unfused) model '
     '(modules backbone, fc); the config builds a MobileOne-S0 (unfused) '
     'detector. Fix: use the config the file was trained with'),
])
def test_test_tool_loads_strictly(checkpoints, shapes_root, tmp_path, name,
                                  extra, expected):
    result = tool(
        TEST, SHAPES_CFG, checkpoints / name, '--work-dir', tmp_path / 'w',
        '--cfg-options', *options(shapes_root), *extra, cwd=tmp_path)
    message = refusal(result)
    assert message.startswith(f'{checkpoints / name} does not fit the model of '
                              f'{SHAPES_CFG}: ')
    assert expected in message
    # checked before the runner is built: no environment and config log
    # (~70 lines) before the one line that matters
    assert 'mmengine - INFO' not in result[1] and not (tmp_path / 'w').exists()


def test_partial_load_is_explicit_and_reported(checkpoints, shapes_root, tmp_path):
    args = (TEST, SHAPES_CFG, checkpoints / 'no_head.pth', '--work-dir',
            tmp_path / 'w', '--cfg-options', *options(shapes_root))
    message = refusal(tool(*args, cwd=tmp_path))
    assert 'missing from the file (bbox_head.' in message
    assert 'or pass --partial-load' in message
    code, out = tool(*args, '--partial-load', cwd=tmp_path)
    assert code == 0 and 'Traceback' not in out, out[-3000:]
    assert (f'model weights loaded from {checkpoints / "no_head.pth"}; ') in out
    assert 'not loaded (left as initialised): bbox_head.' in out
    assert 'coco/bbox_mAP' in out  # it evaluated


@pytest.mark.parametrize('how, expected', [
    ('--resume', 'resume from a checkpoint of this config'),
    ('load_from', 'or pass --partial-load to load only the weights that fit'),
])
def test_train_tool_loads_strictly(checkpoints, shapes_root, tmp_path, how,
                                   expected):
    ckpt = checkpoints / 's2.pth'
    args = ['--resume', ckpt] if how == '--resume' else []
    more = [f'load_from={ckpt}'] if how == 'load_from' else []
    message = refusal(tool(TRAIN, SHAPES_CFG, '--work-dir', tmp_path / 'w', *args,
                           '--cfg-options', *options(shapes_root), *more,
                           cwd=tmp_path))
    assert message.startswith(f'{ckpt} does not fit the model of {SHAPES_CFG}: ')
    assert expected in message
    assert not list((tmp_path / 'w').glob('*.pth'))  # nothing trained


@pytest.mark.parametrize('config, extra, expected', [
    (CLS / 'mobileone_s0_in1k_deploy.py', [],
     f'{CLS}/mobileone_s0_in1k_deploy.py builds a fused MobileOne (deploy=True): '
     f'fused networks have no BN and are for inference; train '
     f'{CLS}/mobileone_s0_in1k.py and fuse afterwards with '
     f'tools/reparameterize.py (--allow-fused fine-tunes the fused network '
     f'anyway)'),
    (SHAPES_CFG, ['--cfg-options', 'model.backbone.deploy=True'],
     f'train {SHAPES_CFG} with model.backbone.deploy=False and fuse afterwards'),
    (CLS / 'mobileone_s0_in1k_deploy.py', ['--allow-fused'],
     'data set not found: data/imagenet/train'),  # allowed: it went on
])
def test_training_a_fused_network_is_refused(tmp_path, config, extra, expected):
    message = refusal(tool(TRAIN, config, '--work-dir', tmp_path / 'w', *extra,
                           cwd=tmp_path))
    assert expected in message


def test_misuse_gets_one_line_with_the_fix(shapes_root, tmp_path):
    s9 = ['--cfg-options', 'model.backbone.arch=s9']
    unknown = ("unknown MobileOne arch 's9': choose one of s0, s1, s2, s3, s4 "
               "(e.g. --cfg-options model.backbone.arch=s0), or a dict with "
               "the keys num_blocks, widths, num_conv_branches, num_se_blocks")
    assert refusal(tool(TRAIN, SHAPES_CFG, *s9, cwd=tmp_path)) == unknown
    (tmp_path / 'epoch_1.pth').write_bytes(b'')
    assert refusal(tool(TEST, SHAPES_CFG, tmp_path / 'epoch_1.pth', *s9,
                        cwd=tmp_path)) == unknown

    broken = tmp_path / 'broken.pth'
    broken.write_bytes(b'PK\x03\x04 not really a zip archive')
    assert refusal(tool(TEST, SHAPES_CFG, broken, cwd=tmp_path)) == (
        f'{broken}: cannot be read (RuntimeError): the file is truncated (an '
        f'interrupted write?) or not a PyTorch checkpoint; use another checkpoint')
    assert refusal(tool(TRAIN, SHAPES_CFG, '--resume', broken, cwd=tmp_path)) \
        .endswith('use another checkpoint (--resume without a path takes the '
                  'newest one that loads)')

    work = tmp_path / 'w'
    work.mkdir()
    shutil.copy(broken, work / 'epoch_1.pth')
    out = tool(TRAIN, SHAPES_CFG, '--work-dir', work, '--resume', cwd=tmp_path)
    assert refusal(out) == (
        f'--resume: no checkpoint in {work} loads (skipped epoch_1.pth); resume '
        f'from a good copy with --resume PATH, or move these files out of the '
        f'work dir to train from scratch')
    assert f'warning: --resume: skipping {work}/epoch_1.pth: cannot be read' in out[1]

    (tmp_path / 'data' / 'imagenet').mkdir(parents=True)
    message = refusal(tool(TRAIN, CLS / 'mobileone_s0_in1k.py', cwd=tmp_path))
    assert message.startswith('data set not found: data/imagenet/train')
    assert 'expected layout for ImageNet' in message

    missing = ['--cfg-options', *options(shapes_root),
               'train_dataloader.dataset.ann_file=annotations/nope.json']
    message = refusal(tool(TRAIN, SHAPES_CFG, *missing, cwd=tmp_path))
    assert message.startswith(f'data set not found: {shapes_root}/annotations/nope.json')


def test_partial_load_does_not_apply_to_resume(tmp_path):
    assert refusal(tool(TRAIN, SHAPES_CFG, '--resume', '--partial-load',
                        cwd=tmp_path)) == (
        '--partial-load is for fine-tuning (load_from); --resume needs a '
        'checkpoint of the same model: drop one of them')
