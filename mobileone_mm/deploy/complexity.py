"""Parameters and MACs of a model (the paper's Table 8 columns)."""
from typing import Sequence

import torch
import torch.nn as nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass, counted like fvcore (as the
    paper did) with mmengine's port of its counter."""
    from mmengine.analysis import FlopAnalyzer
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    x = torch.zeros(*input_shape, dtype=param.dtype, device=param.device)
    analyzer = FlopAnalyzer(model, x)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    total = int(analyzer.total())
    model.train(was_training)
    return total
