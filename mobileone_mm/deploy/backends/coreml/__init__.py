"""The ``coreml`` backend (iOS, macOS): ``program`` converts a fused network
to an ML program and reads a saved package back on any OS (ops, weights);
``complete`` builds the complete detector (a pipeline with Core ML's own
NonMaximumSuppression) and segmentor. Only macOS runs Core ML."""
import os.path as osp
import platform
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..base import Backend
from .complete import (DIFFERENCES, check_package, coreml_compare_full,
                       coreml_latency_full, export_complete)
from .program import (COMPUTE_UNITS, PRECISIONS, TARGETS, coreml_compare,
                      coreml_conv_weights, coreml_latency, coreml_ops,
                      export_coreml, import_coremltools, torch_conv_weights)

__all__ = ['COMPUTE_UNITS', 'PRECISIONS', 'TARGETS', 'CoreMLBackend',
           'coreml_compare', 'coreml_conv_weights', 'coreml_latency',
           'coreml_ops', 'export_coreml', 'import_coremltools',
           'torch_conv_weights']


class CoreMLBackend(Backend):
    """Core ML ML programs (iOS 15+/macOS 12+), converted by coremltools.
    They are written and read back on any OS; only macOS runs them."""
    name, title = 'coreml', 'Core ML'
    differences = DIFFERENCES
    quantization = ('fp16, 8/6/4-bit weight palettes and a8w8 '
                    '(coremltools.optimize)')
    conv_ops, add_ops = ('conv', ), ('add', )
    modules = ('coremltools', )

    def require(self) -> None:
        import_coremltools()

    def describe(self, options) -> dict:
        return dict(precision=options.precision,
                    minimum_deployment_target=options.target,
                    compute_units=options.compute_units)

    def export(self, model: nn.Module, example: torch.Tensor, stem: str,
               options=None) -> str:
        precision = getattr(options, 'precision', 'fp32')
        target = getattr(options, 'target', 'iOS15')
        return export_coreml(model, example, f'{stem}.mlpackage', precision,
                             target)

    def ops(self, path: str) -> Dict[str, int]:
        return coreml_ops(path)

    def cannot_run(self) -> Optional[str]:
        if platform.system() == 'Darwin':
            return None
        return (f'Core ML predicts only on macOS; this is '
                f'{platform.system()}: the other backends and PyTorch are '
                f'compared and timed instead')

    def run(self, path: str, x: torch.Tensor) -> List[np.ndarray]:
        ct = import_coremltools()
        out = ct.models.MLModel(path).predict({'input': x.numpy()})
        return [np.asarray(out[f'output{i}']) for i in range(len(out))]

    def runner(self, path: str, input_shape: Sequence[int],
               threads: int = 0):
        """Core ML chooses its own threads and units (``threads`` is not
        Core ML's to set): timed as it runs on the device."""
        ct = import_coremltools()
        mlmodel = ct.models.MLModel(path)  # load (compile)
        feed = {'input': np.random.rand(*input_shape).astype(np.float32)}
        return lambda: mlmodel.predict(feed)

    def complete(self, exporter, graph: nn.Module, image: torch.Tensor,
                 labels: Sequence[str]) -> Optional[dict]:
        """The complete Core ML model (detector: a pipeline with Core ML's
        NonMaximumSuppression), read back and checked; on macOS also run
        against PyTorch and timed."""
        o = exporter.options
        path = osp.join(exporter.work_dir, 'model.mlpackage')
        kind = type(graph).__name__[:-len('Graph')].lower()
        exporter.log(f'Core ML: converting the complete {kind} '
                     f'({o.precision}, {o.target})')
        export_complete(graph, image, path, labels, o.precision, o.target)
        section = dict(path=path, precision=o.precision,
                       minimum_deployment_target=o.target,
                       **check_package(path, graph, image, labels,
                                       o.precision))
        section['macos_check'] = coreml_compare_full(
            path, graph, image, o.precision, o.compute_units)
        latency, note = coreml_latency_full(path, graph, image, o.runs,
                                            o.compute_units)
        section.update(latency_ms=latency, compute_units=o.compute_units,
                       note=note)
        return section
