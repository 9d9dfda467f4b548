"""Complete Core ML models: image in, detections or a class map out.

- Detector: a pipeline of two models, as Apple's detector pipelines are
  built: the ML program of :class:`~mobileone_mm.deploy.postprocess.
  DetectorGraph` (``raw_confidence``, ``raw_coordinates`` for every anchor),
  then Core ML's own ``NonMaximumSuppression`` model (no custom op): per-class
  PickTop with the config's ``test_cfg`` IoU and score thresholds, at most
  ``max_per_img`` boxes (the outputs' shape range), the class labels in its
  ``stringClassLabels``. Outputs ``confidence`` (boxes x classes) and
  ``coordinates`` (boxes x 4, normalized centre x, y, width, height).
  ``iouThreshold`` and ``confidenceThreshold`` are optional inputs that
  override the defaults at run time.
- Segmentor: the ML program of :class:`~mobileone_mm.deploy.postprocess.
  SegmentorGraph`, output ``semanticPredictions`` (H x W class indices).

Both take an image (``ct.ImageType``, the network's channel order) and
carry the class names in the user-defined metadata. What can be read back
from a saved package on any OS is read by :func:`inspect_package` and
checked by :func:`check_package`; predicting needs macOS
(:func:`coreml_compare_full`, :func:`coreml_latency_full`).
"""
import copy
import json
import os
import platform
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmcv.cnn import fuse_conv_bn
from PIL import Image

from .program import (COMPUTE_UNITS, _quiet, import_coremltools,
                      torch_conv_weights)

from ...latency import measure_latency
from ...postprocess import DetectorGraph, SegmentorGraph, coreml_style_nms

RAW_OUTPUTS = ('raw_confidence', 'raw_coordinates')
DETECTOR_OUTPUTS = ('confidence', 'coordinates')
SEGMENTOR_OUTPUT = 'semanticPredictions'
THRESHOLD_INPUTS = ('iouThreshold', 'confidenceThreshold')
# max|Core ML conv weight - PyTorch's (BN folded)| / max|PyTorch's|: two
# float32 foldings of the same BN differ by rounding; fp16 by one step.
WEIGHT_RTOL = {'fp32': 1e-5, 'fp16': 1e-3}
# macOS: Core ML against PyTorch, normalized coordinates and confidences
# (absolute), and the share of class-map pixels allowed to differ (near-tied
# logits); our choice, not a Core ML figure.
MACOS_ATOL = {'fp32': 1e-3, 'fp16': 1e-2}
MACOS_PIXELS = {'fp32': 1e-3, 'fp16': 1e-2}
# Where the complete Core ML detector differs from mmdet by design (Core ML's
# NonMaximumSuppression spec), stated in every detector report
# that has a Core ML model.
DIFFERENCES = [
    "Core ML's NMS labels each box with the argmax of its confidences and "
    'suppresses within a label; mmdet keeps every class above score_thr per '
    'anchor, so an anchor scoring two classes above it is returned once',
    "Core ML has no nms_pre (mmdet's per-level top-k before NMS) and no "
    'min_bbox_size filter: it suppresses among all boxes above the '
    'confidence threshold']


def nms_settings(graph: DetectorGraph) -> dict:
    """The config's test_cfg as Core ML's NMS takes it (mmdet's SSD and
    RetinaNet suppress per class: ``batched_nms``)."""
    cfg = graph.detector.bbox_head.test_cfg
    return dict(iou_threshold=float(cfg['nms']['iou_threshold']),
                confidence_threshold=float(cfg.get('score_thr', 0.)),
                per_class=True,
                max_detections=int(cfg.get('max_per_img', -1)))


def _program(graph: nn.Module, image: torch.Tensor, outputs, precision: str,
             target: str):
    """Trace ``graph`` and convert it to an ML program with an image input
    (pixels 0..255, scale 1, the network's channel order)."""
    ct = import_coremltools()
    order = graph.norm.channel_order
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(graph, image, check_trace=False)
        return ct.convert(
            traced,
            inputs=[ct.ImageType(name='image', shape=tuple(image.shape),
                                 color_layout=getattr(ct.colorlayout, order))],
            outputs=outputs, convert_to='mlprogram',
            compute_precision=(ct.precision.FLOAT16 if precision == 'fp16'
                               else ct.precision.FLOAT32),
            minimum_deployment_target=getattr(ct.target, target))


def _nms_model(program, labels: Sequence[str], nms: dict):
    """Core ML's ``NonMaximumSuppression`` model, its inputs the program's
    outputs; built as a spec: coremltools has no builder for it."""
    ct = import_coremltools()
    spec = ct.proto.Model_pb2.Model()
    spec.specificationVersion = program.get_spec().specificationVersion
    widths = (len(labels), 4)
    for src, name, width in zip(program.get_spec().description.output,
                                DETECTOR_OUTPUTS, widths):
        spec.description.input.add().CopyFrom(src)
        out = spec.description.output.add()
        out.CopyFrom(src)
        out.name = name
        array = out.type.multiArrayType
        del array.shape[:]
        for low, high in ((0, nms['max_detections']), (width, width)):
            size = array.shapeRange.sizeRanges.add()
            size.lowerBound, size.upperBound = low, high
    for name in THRESHOLD_INPUTS:
        feature = spec.description.input.add()
        feature.name = name
        feature.type.doubleType.SetInParent()
        feature.type.isOptional = True
    suppress = spec.nonMaximumSuppression
    suppress.confidenceInputFeatureName, \
        suppress.coordinatesInputFeatureName = RAW_OUTPUTS
    suppress.confidenceOutputFeatureName, \
        suppress.coordinatesOutputFeatureName = DETECTOR_OUTPUTS
    suppress.iouThresholdInputFeatureName, \
        suppress.confidenceThresholdInputFeatureName = THRESHOLD_INPUTS
    suppress.iouThreshold = nms['iou_threshold']
    suppress.confidenceThreshold = nms['confidence_threshold']
    suppress.pickTop.perClass = nms['per_class']
    suppress.stringClassLabels.vector.extend(labels)
    with _quiet():  # loading fails off macOS; the spec is what is saved
        return ct.models.MLModel(spec)


def export_complete(graph: nn.Module, image: torch.Tensor, path: str,
                    labels: Sequence[str], precision: str = 'fp32',
                    target: str = 'iOS15') -> str:
    """Convert a :class:`DetectorGraph` (a pipeline with NMS) or a
    :class:`SegmentorGraph` (one ML program) and save it as ``path``
    (``.mlpackage``, replaced if it exists)."""
    ct = import_coremltools()
    if isinstance(graph, DetectorGraph):
        nms = nms_settings(graph)
        program = _program(graph, image, [ct.TensorType(name=n,
                                                        dtype=np.float32)
                                          for n in RAW_OUTPUTS],
                           precision, target)
        with _quiet():
            model = ct.utils.make_pipeline(program,
                                           _nms_model(program, labels, nms))
        meta = dict(nms, classes=list(labels))
    else:
        model = _program(graph, image, [ct.TensorType(
            name=SEGMENTOR_OUTPUT, dtype=np.int32)], precision, target)
        meta = dict(classes=list(labels))
    model.short_description = (
        f'MobileOne {type(graph).__name__[:-len("Graph")].lower()} '
        f'(mobileone_mm), '
        f'{precision}, input {image.shape[-1]}x{image.shape[-2]} '
        f'{graph.norm.channel_order}')
    for key, value in meta.items():
        model.user_defined_metadata[key] = json.dumps(value)
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.save(path)
    return path


def _feature(feature) -> dict:
    """One input or output of a spec as plain data."""
    kind = feature.type.WhichOneof('Type')
    out = dict(name=feature.name, type=kind.replace('Type', ''),
               optional=bool(feature.type.isOptional))
    if kind == 'imageType':
        image = feature.type.imageType
        color = image.ColorSpace.Name(image.colorSpace)
        out.update(color=color, width=int(image.width),
                   height=int(image.height))
    elif kind == 'multiArrayType':
        array = feature.type.multiArrayType
        out['dtype'] = array.ArrayDataType.Name(array.dataType)
        out['shape'] = [int(s) for s in array.shape] or [
            [int(r.lowerBound), int(r.upperBound)]
            for r in array.shapeRange.sizeRanges]
    return out


def _load(path: str):
    ct = import_coremltools()
    with _quiet():
        mlmodel = ct.models.MLModel(path, skip_model_load=True)
    spec = mlmodel.get_spec()
    program = spec.pipeline.models[0] \
        if spec.WhichOneof('Type') == 'pipeline' else spec
    return mlmodel, spec, program


def inspect_package(path: str) -> dict:
    """What a saved complete model holds, read from its spec (any OS):
    ``kind``, ``inputs``, ``outputs``, ``metadata`` (user-defined, JSON
    values), ``nms`` (the NMS model's settings, detectors) and ``ops`` (the
    ML program's operation counts)."""
    mlmodel, spec, program = _load(path)
    meta = {k: json.loads(v)
            for k, v in spec.description.metadata.userDefined.items()
            if not k.startswith('com.github.apple')}
    nms = None
    if spec.WhichOneof('Type') == 'pipeline':
        model = spec.pipeline.models[1]
        n = model.nonMaximumSuppression
        ranges = model.description.output[0].type.multiArrayType.shapeRange
        nms = dict(iou_threshold=n.iouThreshold,
                   confidence_threshold=n.confidenceThreshold,
                   per_class=n.pickTop.perClass,
                   max_detections=int(ranges.sizeRanges[0].upperBound),
                   class_labels=list(n.stringClassLabels.vector))
    main = program.mlProgram.functions['main']
    ops: Dict[str, int] = {}
    for op in main.block_specializations[main.opset].operations:
        ops[op.type] = ops.get(op.type, 0) + 1
    return dict(kind=spec.WhichOneof('Type'),
                inputs=[_feature(f) for f in spec.description.input],
                outputs=[_feature(f) for f in spec.description.output],
                metadata=meta, nms=nms,
                ops=dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))))


def package_conv_weights(path: str) -> List[np.ndarray]:
    """The weights of every ``conv`` of the package's ML program, in
    program order and dtype (read from the weights blob: any OS)."""
    from coremltools.converters.mil.frontend.milproto.load import load
    mlmodel, spec, program = _load(path)
    with _quiet():
        prog = load(program, spec.specificationVersion, mlmodel.weights_dir)
    return [np.asarray(op.weight.val)
            for op in prog.functions['main'].operations if op.op_type == 'conv']


def expected_io(graph: nn.Module, labels: Sequence[str]) -> dict:
    """The inputs, outputs and NMS settings a complete model must have."""
    h, w = graph.input_hw
    image = dict(name='image', type='image', optional=False,
                 color=graph.norm.channel_order, width=w, height=h)
    if isinstance(graph, SegmentorGraph):
        return dict(inputs=[image], nms=None, outputs=[dict(
            name=SEGMENTOR_OUTPUT, type='multiArray', optional=False,
            dtype='INT32', shape=[h, w])])
    nms = nms_settings(graph)
    top = nms['max_detections']
    outputs = [dict(name=n, type='multiArray', optional=False,
                    dtype='FLOAT32', shape=[[0, top], [width, width]])
               for n, width in zip(DETECTOR_OUTPUTS, (len(labels), 4))]
    thresholds = [dict(name=n, type='double', optional=True)
                  for n in THRESHOLD_INPUTS]
    return dict(inputs=[image] + thresholds, outputs=outputs,
                nms=dict(nms, class_labels=list(labels)))


def check_weights(path: str, graph: nn.Module, image: torch.Tensor,
                  precision: str) -> dict:
    """Every conv weight of the package against the graph's in PyTorch,
    BN folded first (mmcv's ``fuse_conv_bn``: coremltools folds a BN that
    follows a conv), in the order the forward pass calls them."""
    ours = package_conv_weights(path)
    ref = [w for w, _ in torch_conv_weights(
        fuse_conv_bn(copy.deepcopy(graph)), image)]
    if [w.shape for w in ours] != [w.shape for w in ref]:
        return dict(convs=len(ours), reference_convs=len(ref),
                    max_rel_diff=None, ok=False)
    rel = max(float(np.abs(o.astype(np.float64) - r).max()
                    / max(np.abs(r).max(), 1e-12)) for o, r in zip(ours, ref))
    return dict(convs=len(ours), reference_convs=len(ref), max_rel_diff=rel,
                ok=rel <= WEIGHT_RTOL[precision])


def check_package(path: str, graph: nn.Module, image: torch.Tensor,
                  labels: Sequence[str], precision: str) -> dict:
    """Read a saved complete model back and check its inputs, outputs,
    class labels (metadata, NMS), NMS settings and conv weights; ``ok`` and
    one line per ``problem``."""
    info = inspect_package(path)
    expected = expected_io(graph, labels)
    problems = [f'{key}: {info[key]} != expected {expected[key]}'
                for key in ('inputs', 'outputs', 'nms')
                if info[key] != expected[key]]
    if info['metadata'].get('classes') != list(labels):
        problems.append(f'metadata classes {info["metadata"].get("classes")}'
                        f' != {list(labels)}')
    weights = check_weights(path, graph, image, precision)
    if not weights['ok']:
        problems.append(f'conv weights differ from PyTorch\'s: {weights}')
    return dict(info, conv_weights=weights, problems=problems,
                ok=not problems)


# ---- macOS only: Core ML predicts there and nowhere else -----------------
def _feed(image: torch.Tensor, order: str) -> dict:
    """The image as a PIL picture (RGB; Core ML reorders it for a BGR
    input)."""
    pixels = image[0].permute(1, 2, 0).numpy().astype(np.uint8)
    return {'image': Image.fromarray(pixels[..., ::-1].copy()
                                     if order == 'BGR' else pixels)}


def _coreml_model(path: str, compute_units: str):
    ct = import_coremltools()
    units = getattr(ct.ComputeUnit, COMPUTE_UNITS[compute_units])
    return ct.models.MLModel(path, compute_units=units)


def coreml_compare_full(path: str, graph: nn.Module, image: torch.Tensor,
                        precision: str = 'fp32',
                        compute_units: str = 'all') -> Optional[dict]:
    """Core ML's predictions on ``image`` against the graph in PyTorch
    (detectors: followed by :func:`coreml_style_nms`); ``None`` off macOS.
    ``ok``: the same number of boxes within ``MACOS_ATOL``, or at most
    ``MACOS_PIXELS`` of the class map's pixels different."""
    if platform.system() != 'Darwin':
        return None
    out = _coreml_model(path, compute_units).predict(
        _feed(image, graph.norm.channel_order))
    with torch.no_grad():
        ref = graph(image)
    if isinstance(graph, SegmentorGraph):
        ours = np.asarray(out[SEGMENTOR_OUTPUT]).reshape(ref.shape)
        differ = int((ours != ref.numpy()).sum())
        return dict(pixels=int(ref.numel()), differing_pixels=differ,
                    ok=differ <= MACOS_PIXELS[precision] * ref.numel())
    refs = coreml_style_nms(*ref, nms_settings(graph))
    got = [np.asarray(out[n], dtype=np.float64) for n in DETECTOR_OUTPUTS]
    result = dict(detections=len(got[0]), torch_detections=len(refs[0]))
    if len(got[0]) == len(refs[0]):
        for name, a, r in zip(DETECTOR_OUTPUTS, got, refs):
            result[f'max_abs_{name}_diff'] = float(
                np.abs(a - r.numpy()).max()) if len(a) else 0.
    result['ok'] = len(got[0]) == len(refs[0]) and all(
        result[f'max_abs_{n}_diff'] <= MACOS_ATOL[precision]
        for n in DETECTOR_OUTPUTS)
    return result


def coreml_latency_full(path: str, graph: nn.Module, image: torch.Tensor,
                        runs: int, compute_units: str = 'all'
                        ) -> Tuple[Optional[dict], str]:
    """The whole model (NMS included) timed with the paper's protocol on
    macOS; elsewhere ``(None, note)``."""
    if platform.system() != 'Darwin':
        return None, (f'Core ML predicts only on macOS; this is '
                      f'{platform.system()}: the package was read back and '
                      f'checked, not run')
    model = _coreml_model(path, compute_units)
    feed = _feed(image, graph.norm.channel_order)
    return measure_latency(lambda: model.predict(feed), runs), \
        f'Core ML on {platform.mac_ver()[0] or "macOS"}, compute units ' \
        f'{compute_units}, the whole model'
