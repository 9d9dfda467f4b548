from .data_check import MissingDataError, check_data
from .hooks import FusedEvalHook

__all__ = ['FusedEvalHook', 'MissingDataError', 'check_data']
