"""The proof that a fused MobileOne backbone is branch-free: what its exported
program must contain, and whether the counted ops say so.

A fused MobileOne is a plain chain (paper Sec. 3.1, Fig. 3): one conv per
block, no additions. Any branch left behind shows up in the exported program
as extra convs and the adds that sum them, whatever the backend, so the op
counts read from the Core ML program or the ONNX graph are a proof that does
not trust the PyTorch side.
"""
from typing import Dict, Sequence, Tuple, Union

import torch.nn as nn

from mobileone_mm.models.backbones.mobileone import (MobileOneBlock,
                                                     SqueezeExcite)


def chain_expectation(backbone: nn.Module) -> Dict[str, int]:
    """What a fused MobileOne backbone must look like: one conv per block
    (43 for S0-S4: stem + 2 x 21 block pairs, paper Table 2) plus the two
    1x1 convs of each SE-ReLU (S4: 12 SE blocks, 67 convs), no additions.

    Example:
        >>> from mobileone_mm.models import MobileOne
        >>> chain_expectation(MobileOne('s0'))
        {'blocks': 43, 'se_blocks': 0, 'convs': 43, 'adds': 0}
    """
    blocks = sum(isinstance(m, MobileOneBlock) for m in backbone.modules())
    se = sum(isinstance(m, SqueezeExcite) for m in backbone.modules())
    return dict(blocks=blocks, se_blocks=se, convs=blocks + 2 * se, adds=0)


def count_ops(ops: Dict[str, int], names: Union[str, Sequence[str]]) -> int:
    """How many of ``ops`` are called any of ``names``.

    Example:
        >>> count_ops({'Convolution': 2, 'ConvolutionDepthWise': 1, 'Input': 1},
        ...           ('Convolution', 'ConvolutionDepthWise'))
        3
    """
    names = (names, ) if isinstance(names, str) else names
    return sum(ops.get(name, 0) for name in names)


def branch_free(ops: Dict[str, int], expected: Dict[str, int],
                conv: Union[str, Sequence[str]] = 'conv',
                add: Union[str, Sequence[str]] = 'add') -> Tuple[bool, str]:
    """Do the exported program's op counts prove a plain chain?

    Args:
        ops: Op counts of the exported program (``coreml_ops``/``onnx_ops``).
        expected: :func:`chain_expectation` of the fused backbone.
        conv: The backend's name(s) of a convolution (``'Conv'`` in ONNX;
            ncnn has two: ``Convolution``, ``ConvolutionDepthWise``).
        add: The backend's name(s) of an addition (``'Add'`` in ONNX).

    Returns:
        ``(verdict, reason)``.

    Example:
        >>> expected = dict(blocks=43, se_blocks=0, convs=43, adds=0)
        >>> branch_free({'conv': 43, 'relu': 43}, expected)
        (True, '43 conv = 43 fused blocks, 0 add: a plain chain')
        >>> branch_free({'conv': 46, 'add': 4}, expected)[0]
        False
    """
    convs, adds = count_ops(ops, conv), count_ops(ops, add)
    conv, add = (n if isinstance(n, str) else '/'.join(n) for n in (conv, add))
    if convs == expected['convs'] and adds == 0:
        return True, (f'{convs} {conv} = {expected["blocks"]} fused blocks'
                      + (f' + 2 x {expected["se_blocks"]} SE'
                         if expected['se_blocks'] else '')
                      + f', 0 {add}: a plain chain')
    return False, (f'branches remain: {convs} {conv} (a fused chain has '
                   f'{expected["convs"]}) and {adds} {add} (a chain has 0)')
