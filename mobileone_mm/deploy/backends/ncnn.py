"""The ``ncnn`` backend (Android): pnnx converts the traced fused network to
ncnn's ``.param``/``.bin``, ncnn's Python wheel runs it (on x86 Linux too).

- The network: ``STEM.param`` with fp32 weights in ``STEM.bin`` (what the
  checks against PyTorch use, with ncnn's fp16/bf16 storage and arithmetic
  switched off) and the same program with fp16 weights in
  ``STEM.fp16.bin`` (pnnx's default and what a phone ships; its error is
  reported apart, run with ncnn's default options).
- The complete detector: :class:`DetectorNcnnGraph` (normalization, the
  fused network, mmdet's anchors and box decoding, the head's scores)
  followed by ncnn's own ``DetectionOutput`` layer, which does the per-class
  NMS inside the graph. The decoded boxes are handed to ``DetectionOutput``
  as its "prior boxes" with zero offsets, so its centre-size decoding
  returns them unchanged and the decoding stays mmdet's (its clamp and
  border clip included). Output ``detections``: one row per detection,
  ``(label, score, x1, y1, x2, y2)``, label 0-based in the config's class
  order, box corners normalized to the input (multiply by its width and
  height). ``score_thr``, ``nms.iou_threshold`` and ``max_per_img`` come
  from the config's ``test_cfg``; mmdet's ``min_bbox_size`` filter is in the
  graph. ncnn has no per-level ``nms_pre``: it keeps every candidate above
  ``score_thr`` (see ``DIFFERENCES``).
- The complete segmentor: :class:`SegmentorNcnnGraph`, the class map
  ``(H, W)`` as float class indices; ncnn has no argmax over channels, so
  the graph computes it from a channel max, a comparison written as
  ``floor(1 - (max - logit) * 2^15)`` (1 exactly where a logit equals the
  max) and a channel min of the indices: torch's argmax, ties to the lowest
  class.

Every program's input blob is ``in0``: pixel values 0..255, ``(3, H, W)``,
in the network's channel order (``normalization.json`` next to the complete
model says which, and that mean/std are inside the graph).
"""
import collections
import contextlib
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from mobileone_mm.utils.atomic import write_text
from mobileone_mm.utils.errors import UserError
from ..compare import DIFF_KEYS, FlatOutputs, compare_outputs, flatten
from ..postprocess import DetectorGraph, SegmentorGraph
from .base import Backend

INPUT = 'in0'
DETECTIONS = 'detections'
# ncnn's reduced-precision switches: all off for the fp32 comparison.
REDUCED_PRECISION = ('use_fp16_storage', 'use_fp16_packed',
                     'use_fp16_arithmetic', 'use_bf16_storage',
                     'use_bf16_packed')
# 2^15: (max - logit) * 2^15 stays finite in fp16 for differences below 2,
# and any difference a float32 can tell from 0 makes 1 - it fall below 1.
_TIE_SCALE = 32768.
# BinaryOp/Eltwise op types (ncnn's layer docs): the additions of a graph.
_BINARY_OPS = {0: 'add', 1: 'sub', 2: 'mul', 3: 'div', 4: 'max', 5: 'min',
               6: 'pow', 7: 'rsub', 8: 'rdiv'}
_ELTWISE_OPS = {0: 'prod', 1: 'sum', 2: 'max'}

DIFFERENCES = [
    "ncnn's DetectionOutput has no per-level nms_pre (mmdet's top-k of each "
    'level before NMS): every (anchor, class) pair above score_thr goes to '
    'NMS; where nms_pre binds on the check image, mmdet is run without it '
    'for the comparison (said in the check)',
    "ncnn's NMS sorts with an unstable quicksort: boxes of equal scores may "
    'come out in another order (the check pairs detections as sets)']


def param_layers(path: str) -> List[Tuple[str, str, List[str], List[str],
                                          Dict[str, str]]]:
    """The layers of an ncnn ``.param`` file: ``(type, name, inputs,
    outputs, params)`` each.

    Example:
        >>> folder = tempfile.mkdtemp()
        >>> path = osp.join(folder, 'x.param')
        >>> with open(path, 'w') as f:
        ...     _ = f.write('7767517\\n2 2\\nInput in0 0 1 in0\\n'
        ...                 'BinaryOp add_0 2 1 in0 in0 out0 0=0\\n')
        >>> [(t, ins, p) for t, _, ins, _, p in param_layers(path)]
        [('Input', [], {}), ('BinaryOp', ['in0', 'in0'], {'0': '0'})]
        >>> param_ops(path)
        {'BinaryOp.add': 1, 'Input': 1}
        >>> shutil.rmtree(folder)
    """
    with open(path) as f:
        lines = [ln.split() for ln in f.read().splitlines()[2:] if ln.strip()]
    layers = []
    for parts in lines:
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), \
            int(parts[3])
        ins, outs = parts[4:4 + n_in], parts[4 + n_in:4 + n_in + n_out]
        params = dict(p.split('=', 1) for p in parts[4 + n_in + n_out:])
        layers.append((kind, name, ins, outs, params))
    return layers


def param_ops(path: str) -> Dict[str, int]:
    """Layer counts by type of an ncnn ``.param``, most frequent first;
    ``BinaryOp`` and ``Eltwise`` are counted by operation
    (``BinaryOp.add``, ``Eltwise.sum``, ...)."""
    counts = collections.Counter()
    for kind, _, _, _, params in param_layers(path):
        if kind == 'BinaryOp':
            kind += '.' + _BINARY_OPS.get(int(params.get('0', 0)), '?')
        elif kind == 'Eltwise':
            kind += '.' + _ELTWISE_OPS.get(int(params.get('0', 0)), '?')
        counts[kind] += 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def output_names(path: str) -> List[str]:
    """The blobs no layer reads: the program's outputs, in pnnx's order
    (``out0``, ``out1``, ...) or the appended ``detections``."""
    layers = param_layers(path)
    read = {b for _, _, ins, _, _ in layers for b in ins}
    outs = [b for _, _, _, o, _ in layers for b in o if b not in read]
    return sorted(outs, key=lambda b: (not b.startswith('out'), len(b), b))


def _import_ncnn():
    try:
        import ncnn
    except ImportError as err:
        raise UserError(f'the ncnn backend needs the ncnn wheel ({err}): '
                        f'pip install "mobileone_mm[deploy]"')
    return ncnn


@contextlib.contextmanager
def _quiet_fd2(log_path: str):
    """pnnx's converter writes its progress to the process's stderr (fd 2):
    send it to ``log_path`` and show its tail only if the block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, 'w') as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except Exception:
            os.dup2(saved, 2)
            with open(log_path) as f:
                sys.stderr.write(f.read()[-4000:])
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def export_ncnn(model: nn.Module, example: torch.Tensor, stem: str,
                fp16_weights: bool = True) -> str:
    """Trace ``model`` (outputs flattened, :class:`FlatOutputs`) and convert
    it with pnnx to ``stem.param`` + ``stem.bin`` (fp32 weights) and, with
    ``fp16_weights``, ``stem.fp16.bin``. pnnx's own files are written to a
    temporary folder of ours and removed. Returns the ``.param`` path."""
    try:
        import pnnx
    except ImportError as err:
        raise UserError(f'the ncnn backend needs pnnx ({err}): pip install '
                        f'"mobileone_mm[deploy]"')
    out_dir = osp.dirname(osp.abspath(stem)) or '.'
    os.makedirs(out_dir, exist_ok=True)
    wrapped = FlatOutputs(model).eval()
    tmp = tempfile.mkdtemp(prefix='.pnnx-', dir=out_dir)
    try:
        with torch.no_grad():
            traced = torch.jit.trace(wrapped, example, check_trace=False)
        pt = osp.join(tmp, 'model.pt')
        traced.save(pt)
        written = {}
        for tag, fp16 in (('fp32', False), ('fp16', True))[
                :2 if fp16_weights else 1]:
            param, weights = osp.join(tmp, f'{tag}.param'), \
                osp.join(tmp, f'{tag}.bin')
            with _quiet_fd2(osp.join(tmp, f'{tag}.log')):
                pnnx.convert(pt, [example], ncnnparam=param, ncnnbin=weights,
                             pnnxparam=osp.join(tmp, 'p.param'),
                             pnnxbin=osp.join(tmp, 'p.bin'),
                             pnnxpy=osp.join(tmp, 'p.py'),
                             pnnxonnx=osp.join(tmp, 'p.onnx'),
                             ncnnpy=osp.join(tmp, 'n.py'), fp16=fp16)
            if not (osp.isfile(param) and osp.isfile(weights)):
                with open(osp.join(tmp, f'{tag}.log')) as f:
                    tail = f.read()[-2000:]
                raise RuntimeError(f'pnnx did not convert the model:\n{tail}')
            written[tag] = (param, weights)
        path = f'{stem}.param'
        shutil.move(written['fp32'][0], path)
        shutil.move(written['fp32'][1], f'{stem}.bin')
        if fp16_weights:
            shutil.move(written['fp16'][1], f'{stem}.fp16.bin')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def weights_of(param: str, fp16: bool = False) -> str:
    """The weights file next to ``param`` (``.bin``, or ``.fp16.bin``)."""
    stem = param[:-len('.param')]
    return f'{stem}.fp16.bin' if fp16 else f'{stem}.bin'


def load_net(param: str, fp16: bool = False, threads: int = 0):
    """An ``ncnn.Net``: ``fp16=False`` loads the fp32 weights with every
    reduced-precision switch off (the fp32 check); ``fp16=True`` the fp16
    weights with ncnn's default options (fp16/bf16 where the CPU has it,
    as a phone runs it). ``threads=0``: ncnn's default."""
    ncnn = _import_ncnn()
    net = ncnn.Net()
    if not fp16:
        for name in REDUCED_PRECISION:
            if hasattr(net.opt, name):
                setattr(net.opt, name, False)
    if threads:
        net.opt.num_threads = int(threads)
    if net.load_param(param) != 0 or \
            net.load_model(weights_of(param, fp16)) != 0:
        raise UserError(f'ncnn could not load {param}: re-export it with '
                        f'tools/deploy.py --backends ncnn')
    return net


def _mat(x: np.ndarray):
    ncnn = _import_ncnn()
    return ncnn.Mat(np.ascontiguousarray(x, dtype=np.float32))


def run_net(net, x: np.ndarray, outputs: Sequence[str]) -> List[np.ndarray]:
    """One inference: ``x`` ``(1, C, H, W)`` into ``in0``, ``outputs``
    extracted (ncnn drops the batch axis: it is put back). An output ncnn
    leaves empty (no detections) comes back with 0 rows."""
    ex = net.create_extractor()
    keep = _mat(x[0])
    ex.input(INPUT, keep)
    results = []
    for name in outputs:
        ret, mat = ex.extract(name)
        if ret != 0:
            raise RuntimeError(f'ncnn failed to compute {name} (error {ret})')
        arr = np.array(mat)
        results.append(arr[None] if arr.size else arr.reshape(1, 0))
    return results


def net_runner(param: str, input_shape: Sequence[int], threads: int = 0,
               fp16: bool = False) -> Callable[[], object]:
    """One ncnn inference on a preallocated random input (a new extractor
    per call, as an app runs it)."""
    net = load_net(param, fp16, threads)
    names = output_names(param)
    x = np.random.rand(*input_shape).astype(np.float32)
    return lambda: run_net(net, x, names)


class DetectorNcnnGraph(nn.Module):
    """A :class:`DetectorGraph` as ncnn's ``DetectionOutput`` takes it:
    ``location`` (zeros), ``confidence`` (background column 0, then the
    classes) and the decoded boxes as ``priorbox`` (normalized corners, then
    variances of 1), all with a leading batch axis, which pnnx drops."""

    def __init__(self, graph: DetectorGraph) -> None:
        super().__init__()
        self.graph = graph
        cfg = graph.detector.bbox_head.test_cfg
        self.min_size = float(cfg.get('min_bbox_size', -1))

    def forward(self, image: torch.Tensor):
        g = self.graph
        cls_scores, bbox_preds = g._raw(image)
        logits = torch.cat([c.permute(0, 2, 3, 1).reshape(
            1, -1, g.cls_channels) for c in cls_scores], dim=1)
        deltas = torch.cat([b.permute(0, 2, 3, 1).reshape(1, -1, 4)
                            for b in bbox_preds], dim=1)
        scores = logits.sigmoid() if g.sigmoid else \
            logits.softmax(-1)[..., :g.num_classes]
        boxes = g.decode(deltas)  # (1, N, 4) pixels, xyxy
        if self.min_size >= 0:  # mmdet's min_bbox_size: w and h > it
            wh = boxes[..., 2:] - boxes[..., :2]
            keep = torch.ceil(((wh - self.min_size) * _TIE_SCALE).clamp(
                0., 1.))
            scores = scores * keep[..., :1] * keep[..., 1:]
        normalized = boxes / torch.cat([g.size, g.size])
        location = torch.zeros_like(normalized).reshape(1, -1)
        confidence = torch.cat([torch.zeros_like(scores[..., :1]), scores],
                               dim=-1)
        priorbox = torch.cat([normalized.reshape(1, 1, -1),
                              torch.ones_like(normalized).reshape(1, 1, -1)],
                             dim=1)
        return location, confidence, priorbox


class RawNetwork(nn.Module):
    """The complete detector's network alone (normalization, backbone,
    neck, head; no decoding, no NMS): timed beside the complete model for
    the share of its post-processing."""

    def __init__(self, graph: DetectorGraph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, image: torch.Tensor):
        return tuple(flatten(self.graph._raw(image)))


class SegmentorNcnnGraph(nn.Module):
    """A :class:`SegmentorGraph` with the argmax written in ncnn's ops (see
    the module doc): image -> class map ``(1, H, W)``, float indices."""

    def __init__(self, graph: SegmentorGraph) -> None:
        super().__init__()
        self.graph = graph
        self.register_buffer('index', torch.arange(
            graph.num_classes, dtype=torch.float).view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.graph.logits(image)
        top = logits.amax(dim=1, keepdim=True)
        is_top = torch.floor((1. - (top - logits) * _TIE_SCALE).clamp(min=0.))
        return (self.index + (1. - is_top) * self.graph.num_classes).amin(
            dim=1)


def nms_settings(graph: DetectorGraph) -> dict:
    """``DetectionOutput``'s parameters from the head's ``test_cfg``."""
    cfg = graph.detector.bbox_head.test_cfg
    return dict(num_class=graph.num_classes + 1,
                nms_threshold=float(cfg.nms.iou_threshold),
                nms_top_k=int(graph.prior_xy.shape[0]),
                keep_top_k=int(cfg.get('max_per_img', 100)),
                confidence_threshold=float(cfg.get('score_thr', 0.)))


def append_detection_output(param: str, nms: dict) -> None:
    """Add ncnn's ``DetectionOutput`` after pnnx's three outputs."""
    with open(param) as f:
        lines = f.read().splitlines()
    layers, blobs = map(int, lines[1].split())
    lines[1] = f'{layers + 1} {blobs + 1}'
    lines.append(f'DetectionOutput          detection_output         3 1 '
                 f'out0 out1 out2 {DETECTIONS} 0={nms["num_class"]} '
                 f'1={nms["nms_threshold"]:.9g} 2={nms["nms_top_k"]} '
                 f'3={nms["keep_top_k"]} '
                 f'4={nms["confidence_threshold"]:.9g}')
    write_text(param, '\n'.join(lines) + '\n')


def export_complete(graph: nn.Module, image: torch.Tensor,
                    stem: str) -> str:
    """The complete detector (``DetectionOutput`` appended) or segmentor as
    ncnn files at ``stem``; returns the ``.param`` path."""
    if isinstance(graph, DetectorGraph):
        path = export_ncnn(DetectorNcnnGraph(graph).eval(), image, stem)
        append_detection_output(path, nms_settings(graph))
        return path
    return export_ncnn(SegmentorNcnnGraph(graph).eval(), image, stem)


def detections(rows: np.ndarray, input_hw: Sequence[int]) -> dict:
    """``DetectionOutput`` rows as mmdet's fields: 0-based labels, scores,
    boxes in input pixels."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    h, w = input_hw
    scale = np.array([w, h, w, h], dtype=np.float64)
    return dict(labels=rows[:, 0].astype(np.int64) - 1, scores=rows[:, 1],
                bboxes=rows[:, 2:] * scale)


def write_normalization(graph: nn.Module, stem: str,
                        labels: Sequence[str]) -> str:
    """``stem.json``: what an app feeds in and gets back."""
    norm = graph.norm
    detector = isinstance(graph, DetectorGraph)
    info = dict(
        input=dict(blob=INPUT, layout='CHW float32',
                   height=graph.input_hw[0], width=graph.input_hw[1],
                   pixel_range=[0, 255], channel_order=norm.channel_order,
                   mean=list(norm.mean), std=list(norm.std),
                   normalization_in_graph=True),
        output=dict(blob=DETECTIONS, rows='label, score, x1, y1, x2, y2',
                    label='0-based index into classes',
                    box='corners normalized to the input (x by width, '
                        'y by height)')
        if detector else dict(blob='out0', layout='H x W float class '
                              'indices (cast to int)'),
        classes=list(labels))
    path = f'{stem}.json'
    with open(path, 'w') as f:
        json.dump(info, f, indent=2)
    return path


class NcnnBackend(Backend):
    """ncnn programs converted by pnnx, run by ncnn's wheel."""
    name, title = 'ncnn', 'ncnn'
    differences = DIFFERENCES
    no_quantization = (
        'ncnn int8 needs ncnn\'s C++ quantization tools (ncnn2table, '
        'ncnn2int8), which no wheel ships: quantize for onnxruntime or '
        'coreml (--backend onnxruntime coreml), or run those tools on '
        'the exported .param/.bin')
    conv_ops = ('Convolution', 'ConvolutionDepthWise')
    add_ops = ('BinaryOp.add', 'Eltwise.sum')
    modules = ('pnnx', 'ncnn')

    def export(self, model: nn.Module, example: torch.Tensor, stem: str,
               options=None) -> str:
        return export_ncnn(model, example, stem)

    def ops(self, path: str) -> Dict[str, int]:
        return param_ops(path)

    def run(self, path: str, x: torch.Tensor,
            fp16: bool = False) -> List[np.ndarray]:
        """Outputs on ``x``: fp32 weights and arithmetic, or (``fp16``) the
        fp16 weights with ncnn's default options."""
        return run_net(load_net(path, fp16), x.numpy(), output_names(path))

    def runner(self, path: str, input_shape: Sequence[int],
               threads: int = 0) -> Callable[[], object]:
        return net_runner(path, input_shape, threads)

    def checks(self, path: str, model: nn.Module, x: torch.Tensor) -> dict:
        """The fp16-weight program with ncnn's default options against
        PyTorch fp32 (reported, not a pass/fail check), and the command
        that times the program on a phone with ncnn's ``benchncnn``."""
        with torch.no_grad():
            reference = flatten(FlatOutputs(model.eval())(x))
        fp16 = compare_outputs(self.run(path, x, fp16=True), reference)
        return dict(fp16={k: fp16[k] for k in DIFF_KEYS},
                    benchncnn=benchncnn_command(path, x.shape))

    def complete(self, exporter, graph: nn.Module, image: torch.Tensor,
                 labels: Sequence[str]) -> Optional[dict]:
        stem = osp.join(exporter.work_dir, 'model.ncnn')
        exporter.log('ncnn: converting the complete '
                     + ('detector (DetectionOutput)'
                        if isinstance(graph, DetectorGraph)
                        else 'segmentor (argmax)'))
        path = export_complete(graph, image, stem)
        section = dict(path=path, ops=param_ops(path),
                       app_io=write_normalization(graph, stem, labels),
                       benchncnn=benchncnn_command(path, image.shape))
        out = self.run(path, image)[0]
        if isinstance(graph, DetectorGraph):
            section['nms'] = nms_settings(graph)
            section['network_path'] = export_ncnn(
                RawNetwork(graph).eval(), image,
                osp.join(exporter.work_dir, 'model_network.ncnn'),
                fp16_weights=False)
            found = detections(out, graph.input_hw)
            section['predictions'] = ('detections', found)
            fp16 = detections(self.run(path, image, fp16=True)[0],
                              graph.input_hw)
            section['fp16_detections'] = dict(
                detections=int(len(fp16['scores'])),
                fp32_detections=int(len(found['scores'])))
        else:
            section['predictions'] = ('class_map', out[0])
        return section


def benchncnn_command(param: str, input_shape: Sequence[int]) -> str:
    """ncnn's ``benchncnn`` on a phone over adb: 50 loops, 4 threads,
    powersave 2 (big cores), CPU (-1), cooling down; input ``[w,h,c]``."""
    _, c, h, w = input_shape
    return (f'adb shell "cd /data/local/tmp && ./benchncnn 50 4 2 -1 1 '
            f'param={osp.basename(param)} shape=[{w},{h},{c}]"')


def detector_predictor(param: str, graph: DetectorGraph, fp16: bool = False,
                       threads: int = 0):
    """A :data:`mobileone_mm.deploy.evaluation.Predictor` of the complete
    ncnn detector: the preprocessed test images are turned back into the
    pixels the graph takes (``x * std + mean``, in the network's channel
    order), run image by image, and its rows become mmdet's predictions
    (boxes rescaled to the original image as ``rescale=True`` does)."""
    from mmengine.structures import InstanceData
    net = load_net(param, fp16, threads)
    mean = torch.tensor(graph.norm.mean).view(1, 3, 1, 1)
    std = torch.tensor(graph.norm.std).view(1, 3, 1, 1)

    def predict(inputs: torch.Tensor, data_samples: list) -> list:
        pixels = (inputs.float() * std + mean).numpy()
        if tuple(pixels.shape[-2:]) != graph.input_hw:
            raise UserError(f'the ncnn detector was exported for '
                            f'{graph.input_hw}, the test images are '
                            f'{tuple(pixels.shape[-2:])}: export at the test '
                            f'pipeline\'s size')
        for i, sample in enumerate(data_samples):
            rows = run_net(net, pixels[i:i + 1], [DETECTIONS])[0][0]
            found = detections(rows, graph.input_hw)
            scale = np.tile(np.asarray(sample.metainfo.get(
                'scale_factor', (1., 1.)), dtype=np.float64), 2)
            sample.pred_instances = InstanceData(
                bboxes=torch.as_tensor(found['bboxes'] / scale,
                                       dtype=torch.float32),
                scores=torch.as_tensor(found['scores'], dtype=torch.float32),
                labels=torch.as_tensor(found['labels'], dtype=torch.long))
        return data_samples

    return predict
