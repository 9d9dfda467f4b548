"""Distributed training on CPU-only machines (torchrun + gloo).

mmengine 0.10.7 assumes GPUs once a launcher is set: ``init_dist`` calls
``torch.cuda.set_device`` and ``Runner.wrap_model`` passes ``device_ids`` to
DDP, both of which fail on a CPU module. These two narrow fixes apply only
when CUDA is unavailable.
"""
import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel

from mobileone_mm.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for CPU modules, which take no device ids."""

    def __init__(self, module, device_ids=None, **kwargs) -> None:
        super().__init__(module=module, device_ids=None, **kwargs)


def prepare_cpu_distributed(cfg) -> bool:
    """Set up a gloo process group and a CPU DDP wrapper for ``cfg``.

    Returns:
        Whether the fix was applied (a distributed launch without CUDA).
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return False
    if not dist.is_initialized():  # env:// variables come from torchrun
        # gloo: the CPU backend (mmengine's default nccl needs GPUs).
        dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.update(type='mobileone_mm.CPUDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters',
                       cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    return True
