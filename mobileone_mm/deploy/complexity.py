"""Parameters and MACs of a model (the paper's Table 8 columns)."""
from typing import Optional, Sequence

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


def config_complexity(config: str, input_shape: Optional[Sequence[int]] = None,
                      fused: bool = True,
                      cfg_options: Optional[dict] = None) -> dict:
    """Parameters and MACs of a config's model as it runs at inference: the
    network without post-processing (``mode='tensor'``), without a
    segmentor's training-only auxiliary head, fused unless ``fused`` is
    False; random weights (the counts do not depend on them).

    Returns:
        A dict with ``config``, ``input_shape`` (default the config's input
        size), ``fused``, ``params`` and ``macs``.
    """
    from ..apis import build_model, input_shape_from_config, load_config
    from .fusion import reparameterize
    cfg = load_config(config, cfg_options)
    if cfg.model.get('auxiliary_head') is not None:
        cfg.model.auxiliary_head = None
    shape = tuple(input_shape or input_shape_from_config(cfg))
    model = build_model(cfg)
    if fused:
        model = reparameterize(model, inplace=True)
    return dict(config=config, input_shape=list(shape), fused=fused,
                params=count_params(model), macs=count_macs(model, shape))
