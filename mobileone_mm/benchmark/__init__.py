"""The paper's latency study on this machine (tools/analysis/benchmark.py).

* MobileOne S0-S4 (train-time and fused) and the efficient backbones that
  mmpretrain ships, as 1000-class ImageNet classifiers, batch 1, fp32,
  224x224, in PyTorch eager and ONNX Runtime, with the paper's protocol
  (Sec. 3.5: load, preallocate, run once, then N runs; the minimum is the
  paper's figure); params and MACs (fvcore-style, as Table 8): ``zoo``,
  ``workers``;
* the Spearman rank correlation of latency with MACs and with params
  (Table 1a) and the project's goals as measured ratios with PASS/FAIL:
  ``stats``; a plot of latency vs MACs with the paper's top-1: ``plot``;
* Table 3 (activations) and Table 1b (SE blocks and skip connections) on a
  30-layer conv net: ``ablation``;
* the driver and the printed report: ``driver``;
* the training step and unfused eval of the branch formulations
  (``--training``): ``training``;
* int8 ONNX Runtime rows (``--int8``): fused S0-S4 and MobileNetV2
  quantized and timed side by side with fp32 per thread count: ``int8``;
* ncnn rows (``--ncnn``): the same models in PyTorch, ONNX Runtime and ncnn
  side by side per thread count: ``ncnn``.
"""
from . import int8, training
from .ablation import TABLE1B, TABLE3, conv_net30, run_ablation
from .int8 import INT8_MODELS, INT8_THREADS
from .ncnn import NCNN_MODELS, NCNN_THREADS
from .driver import format_report, run
from .stats import GOALS, goals, spearman
from .workers import measure_models
from .zoo import PAPER_TOP1, QUICK_MODELS, available_models, build, top1

__all__ = ['GOALS', 'INT8_MODELS', 'INT8_THREADS', 'NCNN_MODELS',
           'NCNN_THREADS', 'PAPER_TOP1',
           'QUICK_MODELS', 'TABLE1B', 'TABLE3',
           'available_models', 'build', 'conv_net30', 'format_report',
           'goals', 'measure_models', 'run', 'run_ablation', 'spearman',
           'top1']
