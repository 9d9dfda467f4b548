from .checkpoints import AtomicCheckpointHook
from .cpu_dist import CPUDistributedDataParallel, prepare_cpu_distributed
from .data_check import MissingDataError, check_data
from .hooks import FiniteLossHook, FusedEvalHook

__all__ = ['AtomicCheckpointHook', 'CPUDistributedDataParallel',
           'FiniteLossHook', 'FusedEvalHook', 'MissingDataError', 'check_data',
           'prepare_cpu_distributed']
