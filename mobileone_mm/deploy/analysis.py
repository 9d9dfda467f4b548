"""Params, MACs and latency with the paper's protocol (Sec. 3.5)."""
import time
from typing import Callable, Dict, Sequence

import numpy as np
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


def latency_stats(times_s: Sequence[float]) -> Dict[str, float]:
    ms = np.asarray(times_s) * 1e3
    return dict(min=float(ms.min()), median=float(np.median(ms)),
                p90=float(np.percentile(ms, 90)), runs=int(ms.size))


def measure_latency(run: Callable[[], object], runs: int = 1000) -> Dict[str, float]:
    """The paper's protocol: the model is loaded and its input preallocated
    by the caller (``run`` closes over both); run once, then ``runs`` timed
    runs. The paper reports the minimum; median and p90 are given too."""
    run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return latency_stats(times)


def torch_latency(model: nn.Module, input_shape: Sequence[int],
                  runs: int = 1000) -> Dict[str, float]:
    model.eval()
    param = next(model.parameters())
    x = torch.rand(*input_shape, dtype=param.dtype, device=param.device)

    def run():
        with torch.inference_mode():
            model(x)
        if x.is_cuda:
            torch.cuda.synchronize()

    return measure_latency(run, runs)


class LinearClassifier(nn.Module):
    """Backbone + global average pool + linear: ml-mobileone's classifier,
    the model its published parameter counts and MACs describe."""

    def __init__(self, backbone: nn.Module, num_classes: int = 1000) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.out_channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x)[-1].mean((2, 3)))
