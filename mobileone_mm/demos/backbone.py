"""`make demo-backbone`: MobileOne S0-S4 as ml-mobileone's
classifier, fused and checked, with parameters, MACs and PyTorch latency
before and after fusion (batch 1, fp32, the paper's Sec. 3.5 protocol)."""
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from mobileone_mm.deploy import (count_macs, count_params, reparameterize,
                                 torch_latency)
from mobileone_mm.deploy.compare import compare_models
from mobileone_mm.models import LinearClassifier, MobileOne

OFFICIAL = ('official (fused, 1000 classes): params 2.078/4.765/7.808/10.078/'
            '14.838 M, MACs 275.1/825.1/1298.4/1895.8/2979.3 M')


def randomize_bn_stats(model: nn.Module) -> nn.Module:
    """Random BN running statistics: with the fresh ones (mean 0, var 1) a
    fusion that ignores them would still pass the check."""
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 1.5)
    return model


def measure(arch: str, runs: int, size: int = 224) -> Dict[str, object]:
    """One row of the table: ``arch``'s fused classifier's ``params`` and
    ``macs``, the fusion check in float64 (``fusion_diff``, the max abs
    difference, and ``fusion_ok``) and the min latency in ms of ``runs``
    timed runs, ``unfused_ms`` and ``fused_ms``."""
    model = randomize_bn_stats(LinearClassifier(
        MobileOne(arch, branch_impl='reference')).eval())
    shape = (1, 3, size, size)
    model.double()
    fused = reparameterize(model)
    check = compare_models(fused, model,
                           torch.rand(*shape, dtype=torch.float64))
    model.float()
    fused.float()
    return dict(arch=arch, params=count_params(fused),
                macs=count_macs(fused, shape),
                fusion_diff=check['max_abs_diff'], fusion_ok=check['ok'],
                unfused_ms=torch_latency(model, shape, runs)['min'],
                fused_ms=torch_latency(fused, shape, runs)['min'])


def run(archs: Sequence[str] = tuple(MobileOne.arch_settings), runs: int = 30,
        size: int = 224) -> List[Dict[str, object]]:
    """Print the table for ``archs`` and return its rows (:func:`measure`)."""
    torch.manual_seed(0)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'batch 1, {size}x{size}, fp32; latency = min of {runs} runs after '
          'one warm-up (paper Sec. 3.5)')
    header = (f'{"arch":5} {"params (M)":>10} {"MACs (M)":>9} '
              f'{"fusion max|diff| (f64)":>23} {"unfused ms":>10} '
              f'{"fused ms":>9} {"speed-up":>8}')
    print(header)
    print('-' * len(header))
    rows = []
    for arch in archs:
        row = measure(arch, runs, size)
        rows.append(row)
        print(f'{arch:5} {row["params"] / 1e6:10.3f} '
              f'{row["macs"] / 1e6:9.1f} {row["fusion_diff"]:23.2e} '
              f'{row["unfused_ms"]:10.2f} {row["fused_ms"]:9.2f} '
              f'{row["unfused_ms"] / row["fused_ms"]:7.2f}x', flush=True)
    print(OFFICIAL)
    return rows
