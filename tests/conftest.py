import functools
import os
from pathlib import Path

import mmengine.config.utils as _config_utils
import pytest

ROOT = Path(__file__).resolve().parents[1]



def _remembered(func):
    """``func`` answering each argument tuple once: its result, or the
    ValueError it raised (mmengine's way of saying "not in the index")."""
    answers = {}

    @functools.wraps(func)
    def remembered(*args):
        if args not in answers:
            try:
                answers[args] = (True, func(*args))
            except ValueError as err:
                answers[args] = (False, err)
        found, answer = answers[args]
        if found:
            return answer
        raise answer
    return remembered


# A config with an ``mmdet::``/``mmseg::`` base makes mmengine parse the
# package's whole model index (~200 metafiles, ~0.3-0.9 s) for each base on
# every Config.fromfile; the answer depends only on the installed package, so
# the suite asks once per (package, config) pair.
_config_utils._get_cfg_metainfo = _remembered(_config_utils._get_cfg_metainfo)


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory):
    """A tiny shapes data set (COCO + VOC-style masks), made once per run."""
    from mobileone_mm.datasets import generate_shapes
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(str(root), num_train=8, num_val=4, seed=1)
    return root


@pytest.fixture(scope='session')
def seg_root(shapes_root):
    """The session's tiny shapes data set laid out as VOC and as ADE20K."""
    from mobileone_mm.datasets import write_ade_layout, write_voc_layout
    return Path(write_voc_layout(str(shapes_root))), \
        Path(write_ade_layout(str(shapes_root)))


@pytest.fixture(scope='session')
def imagenet_root(tmp_path_factory):
    """A tiny data set in the ImageNet layout: 8 train + 4 val images."""
    from mobileone_mm.datasets import generate_imagenet_tiny
    root = tmp_path_factory.mktemp('imagenet_tiny')
    generate_imagenet_tiny(str(root), num_train=8, num_val=4, size=64, seed=0)
    return root


@pytest.fixture
def repo_root():
    return ROOT


def subprocess_env():
    """Environment for tool subprocesses: 1 thread each, no GPU."""
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    return env
