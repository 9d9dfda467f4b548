"""Checkpoints given as URLs (served from 127.0.0.1) are downloaded, read as
data and fit-checked before anything is built, like local files, by
``load_from``, ``--resume URL`` and tools/test.py; each says so in one
``note:`` line. (mmengine itself skipped the check for a URL ``load_from``.)"""
import shutil

import pytest
import torch

from mobileone_mm.apis import build_model
from mobileone_mm.engine.launch import test as run_test
from mobileone_mm.engine.launch import train
from mobileone_mm.utils.errors import UserError

from ..test_checkpoint.http_server import server  # noqa: F401  (a fixture)
from ..test_detection.test_ssdlite import SHAPES_CFG, shapes_cfg
from .test_faults import options


@pytest.fixture(scope='module')
def trained(shapes_root, tmp_path_factory):
    """One epoch of the S0 shapes detector (a checkpoint with its training
    state)."""
    work = tmp_path_factory.mktemp('url_source')
    train(str(SHAPES_CFG), work_dir=str(work), cfg_options=options(shapes_root))
    return work / 'epoch_1.pth'


@pytest.fixture
def served(server, shapes_root, trained):  # noqa: F811
    """The trained S0 detector checkpoint and an S2 one on the server;
    returns the base URL."""
    root, base = server
    shutil.copy(trained, root / 's0.pth')
    cfg = shapes_cfg(shapes_root)
    cfg.model.backbone.arch = 's2'
    torch.manual_seed(0)
    torch.save({'state_dict': build_model(cfg).state_dict()}, root / 's2.pth')
    return base


@pytest.mark.parametrize('how', ['load_from', '--resume', 'test'])
def test_a_url_that_does_not_fit_is_refused_before_anything_runs(
        how, served, shapes_root, tmp_path, capsys):
    url, work = f'{served}/s2.pth', tmp_path / 'work'
    with pytest.raises(UserError) as err:
        if how == 'test':
            run_test(str(SHAPES_CFG), url, work_dir=str(work),
                     cfg_options=options(shapes_root))
        elif how == '--resume':
            train(str(SHAPES_CFG), work_dir=str(work), resume=url,
                  cfg_options=options(shapes_root))
        else:
            train(str(SHAPES_CFG), work_dir=str(work),
                  cfg_options=options(shapes_root, load_from=url))
    message = str(err.value)
    if how == '--resume':  # no training state: told before the fit
        assert message == (f'{url}: no training state (meta, message_hub '
                           f'missing), so training cannot resume from it; '
                           f'fine-tune from its weights with --cfg-options '
                           f'load_from={url} instead of --resume')
    else:
        assert message.startswith(f'{url} does not fit the model of '
                                  f'{SHAPES_CFG}: ')
        assert 'The file holds a MobileOne-S2 (unfused) detector' in message
    assert not work.exists()  # refused before the runner was built
    out = capsys.readouterr()
    assert 'mmengine' not in out.out + out.err  # no runner log before it


@pytest.mark.parametrize('how', ['load_from', '--resume', 'test'])
def test_a_url_that_fits_is_checked_and_says_so(how, served, shapes_root,
                                                tmp_path, capsys):
    url, work = f'{served}/s0.pth', tmp_path / 'work'
    if how == 'test':
        run_test(str(SHAPES_CFG), url, work_dir=str(work),
                 cfg_options=options(shapes_root))
    elif how == '--resume':
        runner = train(str(SHAPES_CFG), work_dir=str(work), resume=url,
                       cfg_options=options(shapes_root, epochs=2))
        assert runner.epoch == 2 and (work / 'epoch_2.pth').is_file()
        assert not (work / 'epoch_1.pth').exists()  # epoch 1 came from the URL
    else:
        train(str(SHAPES_CFG), work_dir=str(work),
              cfg_options=options(shapes_root, load_from=url))
    what = {'test': 'testing', '--resume': 'resuming',
            'load_from': 'training'}[how]
    assert (f'note: {url}: downloaded (torch.hub cache, read as data) and '
            f'checked against the model before {what}\n'
            ) in capsys.readouterr().err
