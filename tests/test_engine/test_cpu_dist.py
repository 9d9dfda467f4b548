"""CPU distributed training: a gloo group and a DDP wrapper without device
ids, only for a pytorch launch on a machine without CUDA."""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODEL_WRAPPERS

from mobileone_mm.engine import CPUDistributedDataParallel, prepare_cpu_distributed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('launcher', [None, 'none', 'slurm'])
def test_no_op_without_a_pytorch_launcher(launcher):
    cfg = Config(dict(model=dict(type='Toy')))
    if launcher is not None:
        cfg.launcher = launcher
    before = cfg.to_dict()
    assert prepare_cpu_distributed(cfg) is False
    assert cfg.to_dict() == before and not dist.is_initialized()


def test_no_op_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = Config(dict(launcher='pytorch'))
    assert prepare_cpu_distributed(cfg) is False
    assert 'model_wrapper_cfg' not in cfg and not dist.is_initialized()


@pytest.fixture
def one_process_group(monkeypatch):
    """torchrun's env:// variables for a world of one; the group is torn down
    afterwards."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for key, value in dict(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()),
                           RANK='0', LOCAL_RANK='0', WORLD_SIZE='1').items():
        monkeypatch.setenv(key, value)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_pytorch_launch_on_cpu_gets_gloo_and_the_cpu_wrapper(one_process_group):
    cfg = Config(dict(launcher='pytorch', find_unused_parameters=True,
                      model_wrapper_cfg=dict(type='MMDistributedDataParallel',
                                             static_graph=True)))
    assert prepare_cpu_distributed(cfg) is True
    assert dist.is_initialized() and dist.get_backend() == 'gloo'
    assert cfg.model_wrapper_cfg == dict(
        type='mobileone_mm.CPUDistributedDataParallel', static_graph=True,
        broadcast_buffers=False, find_unused_parameters=True)
    assert prepare_cpu_distributed(cfg) is True  # an existing group is kept
    wrapper = MODEL_WRAPPERS.build(dict(
        cfg.model_wrapper_cfg, static_graph=False),
        default_args=dict(module=nn.Linear(3, 2), device_ids=[0]))
    assert type(wrapper) is CPUDistributedDataParallel
    assert wrapper.device_ids is None  # the device ids were dropped
    out = wrapper(torch.rand(4, 3))
    out.sum().backward()
    assert out.shape == (4, 2) and wrapper.module.weight.grad is not None
