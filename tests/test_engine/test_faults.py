"""Faults beyond a kill, in process through ``launch.train``/``launch.test``
(what tools/train.py and tools/test.py run): a diverging loss, a full disk
while saving, and a corrupt image stop with one line and lose nothing."""
import argparse
import errno
import shutil

import pytest
import torch
from mmengine.config import DictAction
from mmengine.fileio import LocalBackend

from mobileone_mm.engine.checkpoints import DiskFullError
from mobileone_mm.engine.launch import train
from mobileone_mm.utils.errors import UserError

from ..test_detection.test_ssdlite import SHAPES_CFG, shapes_options


def options(root, epochs: int = 1, **extra) -> dict:
    """The tiny shapes data set's ``--cfg-options`` as ``train`` takes them
    (dotted keys), with ``extra``."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    return dict(parser.parse_args(['--o', *shapes_options(root, epochs)]).o,
                **extra)


def finite(path) -> bool:
    state = torch.load(path, weights_only=True)['state_dict']
    return all(bool(v.isfinite().all()) for v in state.values()
               if v.is_floating_point())


def test_non_finite_loss_stops_before_saving_nan_weights(shapes_root, tmp_path):
    """Tried before: lr 1e12 trained to the end, exited 0 and wrote two
    checkpoints of NaN weights."""
    work = tmp_path / 'work'
    opts = options(shapes_root, epochs=2, **{'optim_wrapper.optimizer.lr': 1e12})
    with pytest.raises(UserError) as err:
        train(str(SHAPES_CFG), work_dir=str(work), cfg_options=opts)
    message = str(err.value)
    assert 'training stopped at iteration' in message
    assert 'not finite' in message or 'the loss is' in message
    assert '\n' not in message
    for path in work.glob('*.pth'):  # whatever was written is finite
        assert finite(path), path


def test_the_loss_check_alone_names_iteration_and_last_checkpoint():
    from mobileone_mm.engine.hooks import FiniteLossHook

    class Hub:
        def get_info(self, key):
            return {'last_ckpt': 'work/epoch_3.pth'}.get(key)

    class Runner:
        iter, epoch, message_hub = 41, 3, Hub()

    hook = FiniteLossHook()
    hook.after_train_iter(Runner(), 0, outputs=dict(loss=torch.tensor(1.5)))
    with pytest.raises(UserError, match=r'^training stopped at iteration 42 '
                       r'\(epoch 4\): the loss is nan; .*last good checkpoint '
                       r'is work/epoch_3.pth'):
        hook.after_train_iter(Runner(), 0,
                              outputs=dict(loss=torch.tensor(float('nan'))))
    with pytest.raises(UserError, match='the loss is inf'):
        hook.after_train_iter(Runner(), 0,
                              outputs=dict(loss=torch.tensor(float('inf'))))


def test_disk_full_keeps_the_last_checkpoint_and_resume_continues(
        shapes_root, tmp_path, monkeypatch):
    """The second checkpoint's write fails with ENOSPC halfway (a patched
    write: mmengine saves through its file backend's ``put``)."""
    work = tmp_path / 'work'
    put = LocalBackend.put
    calls = []

    def full_disk(self, obj, filepath):
        if str(filepath).endswith('.partial'):
            calls.append(filepath)
            if len(calls) == 2:
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                raise OSError(errno.ENOSPC, 'No space left on device')
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', full_disk)
    opts = options(shapes_root, epochs=3, **{'train_cfg.val_interval': 10})
    with pytest.raises(DiskFullError) as err:
        train(str(SHAPES_CFG), work_dir=str(work), cfg_options=opts)
    message = str(err.value)
    assert message.startswith(f'no space left to write {work}/epoch_2.pth (')
    assert 'MiB free in' in message and str(work) in message
    assert f'last good checkpoint {work}/epoch_1.pth and last_checkpoint are ' \
           f'intact' in message
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
    assert not list(work.glob('.*.partial'))
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_1.pth')
    assert finite(work / 'epoch_1.pth')

    monkeypatch.setattr(LocalBackend, 'put', put)  # space freed
    runner = train(str(SHAPES_CFG), work_dir=str(work), resume='auto',
                   cfg_options=opts)
    assert runner.epoch == 3
    assert (work / 'epoch_3.pth').is_file() and finite(work / 'epoch_3.pth')
    # the second run's own log: it went on from epoch_1.pth (iteration 2)
    # and trained epochs 2 and 3
    second = sorted(work.glob('2*/2*.log'))[-1].read_text()
    assert 'resumed epoch: 1, iter: 2' in second
    assert 'Epoch(train) [2][2/2]' in second and 'Epoch(train) [3][2/2]' in second


def _truncate(images):
    """Cut every image to its first 200 bytes (a header, no pixels)."""
    images = sorted(images)
    assert images
    for path in images:
        path.write_bytes(path.read_bytes()[:200])
    return images


def _layout(kind, tmp_path, shapes_root, seg_root, imagenet_root):
    """``(config, options, training images)`` of a copy of the tiny data
    set in the ``kind`` layout."""
    from ..test_classification.test_training import S0, as_dict, data_options
    from ..test_segmentation.test_deeplabv3 import SEG, small_options
    from ..test_segmentation.test_deeplabv3 import shapes_options as voc_opts
    if kind == 'coco':
        root = tmp_path / 'coco'
        shutil.copytree(shapes_root, root)
        return SHAPES_CFG, options(root), (root / 'train').glob('*.jpg')
    if kind == 'voc':
        root = tmp_path / 'voc'
        shutil.copytree(seg_root[0], root)
        return (SEG / 'deeplabv3_mobileone_s0_shapes.py', as_dict(voc_opts(root)),
                (root / 'JPEGImages').glob('train_*'))
    if kind == 'ade':
        root = tmp_path / 'ade'
        shutil.copytree(seg_root[1], root)
        return (SEG / 'deeplabv3_mobileone_s0_ade20k.py',
                as_dict(small_options('ade20k', root)),
                (root / 'images' / 'training').glob('*.jpg'))
    root = tmp_path / 'imagenet'
    shutil.copytree(imagenet_root, root)
    return (S0, as_dict(data_options(root) + ['model.backbone.init_cfg=None']),
            (root / 'train').rglob('*.JPEG'))


@pytest.mark.parametrize('kind', ['coco', 'voc', 'ade', 'imagenet'])
def test_corrupt_image_names_the_file(kind, shapes_root, seg_root,
                                      imagenet_root, tmp_path):
    """Tried before: a truncated JPEG in a COCO layout ended in mmcv's
    ``AssertionError: failed to load image`` under a traceback."""
    config, opts, images = _layout(kind, tmp_path, shapes_root, seg_root,
                                   imagenet_root)
    bad = _truncate(images)
    with pytest.raises(UserError) as err:
        train(str(config), work_dir=str(tmp_path / 'work'), cfg_options=opts)
    message = str(err.value)
    named = message.split(': cannot read this image')[0]
    assert named in map(str, bad), message
    assert '\n' not in message and 'Traceback' not in message
    assert 'replace the file, or remove it' in message
