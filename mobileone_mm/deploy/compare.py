"""One forward-and-compare, with one tolerance, for every check that two
implementations of a network agree (fused vs unfused PyTorch, ONNX Runtime
or Core ML vs PyTorch, a fused checkpoint before it is written)."""
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn as nn

from mobileone_mm.models.backbones.fast_branches import per_branch

# Allowed max|diff| / max(largest reference output, 1): float32 sums the
# same products in another order (fused kernels, another runtime).
RTOL = 1e-4
# The keys of compare_outputs that a report keeps.
DIFF_KEYS = ('max_abs_diff', 'max_rel_diff', 'max_abs_output')


def flatten(obj) -> List:
    """The tensors in nested lists, tuples and dicts, in order (anything
    else dropped): how every backend sees a network's outputs. torch.fx
    proxies count as tensors, so one flattening serves fx tracing (Core ML
    a8w8), export and comparison.

    Example:
        >>> t = torch.zeros(1)
        >>> len(flatten((t, [t, {'a': t, 'b': None, 'c': 'text'}])))
        3
    """
    if isinstance(obj, (list, tuple)):
        return [leaf for item in obj for leaf in flatten(item)]
    if isinstance(obj, dict):
        return [leaf for item in obj.values() for leaf in flatten(item)]
    return [obj] if isinstance(obj, (torch.Tensor, torch.fx.Proxy)) else []


def network_outputs(model: nn.Module, x: torch.Tensor):
    """The network's raw outputs: OpenMMLab models run with
    ``mode='tensor'`` (no post-processing), anything else as called."""
    if hasattr(model, 'data_preprocessor'):
        return model(x, mode='tensor')
    return model(x)


class FlatOutputs(nn.Module):
    """Wraps a model so that it returns its raw outputs as one flat tuple
    (what an ONNX graph, a Core ML program or an ncnn net outputs)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return tuple(flatten(network_outputs(self.model, x)))


def forward_tensors(model: nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
    """Raw network outputs (no post-processing) as a flat list of tensors
    (:class:`FlatOutputs` without gradients).

    Example:
        >>> outs = forward_tensors(nn.Conv2d(3, 4, 1), torch.zeros(1, 3, 2, 2))
        >>> [tuple(o.shape) for o in outs]
        [(1, 4, 2, 2)]
    """
    with torch.no_grad():
        return flatten(network_outputs(model, x))


def compare_outputs(outputs: Sequence, reference: Sequence,
                    rtol: float = RTOL) -> Dict[str, float]:
    """Compare two lists of arrays/tensors, output by output.

    Returns ``max_abs_diff``, ``max_abs_output`` (of the reference),
    ``max_rel_diff`` and ``ok`` (``max_abs_diff <= rtol * max(largest
    output, 1)``).

    Example:
        >>> r = compare_outputs([np.ones(3) + 1e-6], [np.ones(3)])
        >>> r['ok'], round(r['max_abs_diff'], 7)
        (True, 1e-06)
    """
    if len(outputs) != len(reference):
        raise RuntimeError(f'{len(outputs)} outputs against {len(reference)} '
                           f'in the reference')
    as_np = [np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t,
                        dtype=np.float64) for t in (*outputs, *reference)]
    outs, refs = as_np[:len(outputs)], as_np[len(outputs):]
    for i, (o, r) in enumerate(zip(outs, refs)):
        if o.shape != r.shape:
            raise RuntimeError(f'output {i} has shape {o.shape}, the '
                               f'reference {r.shape}')
    diff = max((float(np.abs(o - r).max()) if o.size else 0.)
               for o, r in zip(outs, refs))
    scale = max((float(np.abs(r).max()) if r.size else 0.) for r in refs)
    return dict(max_abs_diff=diff, max_abs_output=scale,
                max_rel_diff=diff / max(scale, 1e-12),
                ok=bool(diff <= rtol * max(scale, 1.0)))


def compare_models(model: nn.Module, reference: nn.Module, x: torch.Tensor,
                   rtol: float = RTOL) -> Dict[str, float]:
    """:func:`compare_outputs` of two models' raw outputs on ``x``; the
    reference's unfused blocks run per branch (``per_branch``), so a fused
    network is checked against the training-time branches themselves."""
    with per_branch(reference):
        ref = forward_tensors(reference, x)
    return compare_outputs(forward_tensors(model, x), ref, rtol)
