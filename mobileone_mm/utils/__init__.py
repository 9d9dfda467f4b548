from .compat import allow_mmengine_checkpoints, apply_stack_fixes

__all__ = ['allow_mmengine_checkpoints', 'apply_stack_fixes']
