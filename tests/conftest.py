import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory):
    """A tiny shapes data set (COCO + VOC-style masks), made once per run."""
    from mobileone_mm.datasets import generate_shapes
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(str(root), num_train=8, num_val=4, seed=1)
    return root


@pytest.fixture
def repo_root():
    return ROOT


def subprocess_env():
    """Environment for tool subprocesses: 1 thread each, no GPU."""
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    return env
