"""The complete model of ``tools/deploy.py --full-model`` for detectors and
segmentors: each backend's complete model (``Backend.complete``: Core ML
with its NMS pipeline, ONNX Runtime without NMS, ncnn with its
``DetectionOutput``), the checks of its predictions against mmdet's and
mmseg's own, and the record of what was verified on this OS.

The checks run the graph (:mod:`.postprocess`) in PyTorch and every backend
that runs here on one fixed image and compare with mmdet's
``predict_by_feat`` / ``predict`` (or mmseg's ``predict``) on the same fused
model and image; the Core ML package is read back (any OS), and run only on
macOS.
"""
import copy
import dataclasses
import platform
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from mmdet.models.utils import filter_scores_and_topk
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.structures import InstanceData

from .backends import BACKEND_NAMES, get_backend
from .compare import RTOL
from .latency import torch_section
from .postprocess import (DetectorGraph, Normalization, SegmentorGraph,
                          build_graph, class_names, task_of)

# float32 pixel boxes through normalized centre/size and back: ~1e-5 px off.
BOX_ATOL = 1e-3
SCORE_ATOL = 1e-5
# Another runtime's detections, paired as sets: boxes within this share of
# the input's larger side, scores within SET_SCORE_ATOL.
SET_BOX_SHARE = 1e-3
SET_SCORE_ATOL = 1e-4


def check_image(input_hw: Sequence[int], seed: int = 0) -> torch.Tensor:
    """A fixed image ``(1, 3, H, W)`` of whole pixel values 0..255 (what a
    Core ML image input delivers), in the network's channel order."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, *input_hw), generator=gen).float()


def _loaded(image: torch.Tensor, cfg: Config) -> torch.Tensor:
    """The image as mmcv would have loaded it (BGR where the config's
    preprocessor swaps channels), ``(3, H, W)`` uint8."""
    img = image[0].to(torch.uint8)
    return img.flip(0) if Normalization.from_config(cfg).swaps_channels \
        else img


def mmdet_predictions(model: nn.Module, image: torch.Tensor, cfg: Config,
                      test_cfg: Optional[dict] = None,
                      with_nms: bool = True) -> InstanceData:
    """mmdet's own path on ``image``: its data preprocessor, the network,
    ``predict`` (``test_cfg=None``) or ``bbox_head.predict_by_feat``;
    boxes at the input size (``rescale=False``)."""
    hw = tuple(image.shape[-2:])
    sample = DetDataSample(metainfo=dict(img_shape=hw, ori_shape=hw,
                                         scale_factor=(1., 1.)))
    data = model.data_preprocessor(
        dict(inputs=[_loaded(image, cfg)], data_samples=[sample]), False)
    with torch.no_grad():
        if test_cfg is None and with_nms:
            return model.predict(data['inputs'], data['data_samples'],
                                 rescale=False)[0].pred_instances
        outs = model.bbox_head(model.extract_feat(data['inputs']))
        return model.bbox_head.predict_by_feat(
            *outs, batch_img_metas=[sample.metainfo],
            cfg=ConfigDict(test_cfg), rescale=False, with_nms=with_nms)[0]


def graph_predictions(graph: DetectorGraph, confidence: torch.Tensor,
                      coordinates: torch.Tensor,
                      test_cfg: Optional[dict] = None,
                      with_nms: bool = True) -> InstanceData:
    """The graph's outputs through mmdet's own post-processing: per level
    ``filter_scores_and_topk`` (score_thr, nms_pre), then the head's
    ``_bbox_post_process`` (min_bbox_size, mmcv ``batched_nms``,
    max_per_img), exactly as ``predict_by_feat`` after decoding."""
    head = graph.detector.bbox_head
    cfg = ConfigDict(copy.deepcopy(head.test_cfg if test_cfg is None
                                   else test_cfg))
    xy, wh = coordinates[:, :2] * graph.size, coordinates[:, 2:] * graph.size
    boxes = torch.cat([xy - wh * 0.5, xy + wh * 0.5], dim=1)
    kept = [filter_scores_and_topk(s, cfg.get('score_thr', 0),
                                   cfg.get('nms_pre', -1), dict(b=b))
            for s, b in zip(confidence.split(graph.level_sizes),
                            boxes.split(graph.level_sizes))]
    results = InstanceData(bboxes=torch.cat([k[3]['b'] for k in kept]),
                           scores=torch.cat([k[0] for k in kept]),
                           labels=torch.cat([k[1] for k in kept]))
    return head._bbox_post_process(results, cfg, rescale=False,
                                   with_nms=with_nms,
                                   img_meta=dict(img_shape=graph.input_hw))


def _pairing(ours: InstanceData, ref: InstanceData) -> Optional[torch.Tensor]:
    """For each reference detection the index of ours with its label and the
    nearest box, where that is one to one; ``None`` otherwise. Order-free:
    boxes of near-equal scores may come out of NMS in either order."""
    if len(ours) != len(ref):
        return None
    dist = torch.cdist(ref.bboxes, ours.bboxes, p=float('inf'))
    dist[ref.labels[:, None] != ours.labels[None, :]] = float('inf')
    pick = dist.argmin(dim=1)
    one_to_one = len(set(pick.tolist())) == len(pick)
    return pick if one_to_one and bool(dist.min(dim=1).values.isfinite().all()) \
        else None


def compare_detections(ours: InstanceData, ref: InstanceData,
                       ordered: bool = True, box_atol: float = BOX_ATOL,
                       score_atol: float = SCORE_ATOL) -> dict:
    """Two detection lists, in order (``ordered``) or paired by label and
    nearest box: counts, labels, max box and score differences, and ``ok``
    (all within ``box_atol`` px / ``score_atol``)."""
    out = dict(detections=len(ours), reference_detections=len(ref),
               labels_equal=False, max_abs_box_diff=None,
               max_abs_score_diff=None, ok=False)
    pick = (torch.arange(len(ref)) if len(ours) == len(ref) else None) \
        if ordered else _pairing(ours, ref)
    if pick is None:
        return out
    if not len(ref):
        return dict(out, labels_equal=True, max_abs_box_diff=0.,
                    max_abs_score_diff=0., ok=True)
    box = float((ours.bboxes[pick] - ref.bboxes).abs().max())
    score = float((ours.scores[pick] - ref.scores).abs().max())
    labels = bool(torch.equal(ours.labels[pick], ref.labels))
    return dict(out, labels_equal=labels, max_abs_box_diff=box,
                max_abs_score_diff=score,
                ok=labels and box <= box_atol and score <= score_atol)


def check_detector(model: nn.Module, graph: DetectorGraph, cfg: Config,
                   image: torch.Tensor, outputs=None) -> dict:
    """The graph's outputs against mmdet on ``image`` (the same fused model).
    Default: the graph in PyTorch, checked as ``pre_nms`` (every (anchor,
    class) pair: score_thr -1, nms_pre all, no size filter) against
    ``predict_by_feat(with_nms=False)``, in order; ``post_nms`` against
    ``predict`` at the config's test_cfg, and ``post_nms_all_scores`` at
    score_thr 0, so that NMS runs even where random weights score nothing
    above the config's threshold. Given ``outputs`` (ONNX Runtime's): only
    ``post_nms``; its raw outputs are compared with PyTorch's apart, and
    near-equal random scores sort differently in another runtime."""
    if outputs is None:
        with torch.no_grad():
            outputs = graph(image)
        names = ('pre_nms', 'post_nms', 'post_nms_all_scores')
    else:
        names = ('post_nms', )
    confidence, coordinates = (torch.as_tensor(o) for o in outputs)
    test_cfg = dict(graph.detector.bbox_head.test_cfg)
    variants = dict(
        pre_nms=(dict(test_cfg, score_thr=-1., nms_pre=confidence.numel(),
                      min_bbox_size=-1), False),
        post_nms=(None, True),
        post_nms_all_scores=(dict(test_cfg, score_thr=0.), True))
    return {name: compare_detections(
        graph_predictions(graph, confidence, coordinates, *variants[name]),
        mmdet_predictions(model, image, cfg, *variants[name]),
        ordered=name == 'pre_nms') for name in names}


def mmseg_class_map(model: nn.Module, image: torch.Tensor,
                    cfg: Config) -> torch.Tensor:
    """mmseg's own ``predict`` on ``image``: its preprocessor, 'whole'
    inference, resize, argmax; ``(H, W)``."""
    data = model.data_preprocessor(dict(inputs=[_loaded(image, cfg)]), False)
    with torch.no_grad():
        return model.predict(data['inputs'])[0].pred_sem_seg.data[0]


def check_segmentor(model: nn.Module, graph: SegmentorGraph, cfg: Config,
                    image: torch.Tensor, class_map=None) -> dict:
    """The graph's class map against mmseg's, pixel for pixel: the graph in
    PyTorch must match exactly; another runtime's ``class_map`` must match
    wherever PyTorch's two best logits are further apart than float
    rounding (``RTOL`` x the largest logit), and may pick either class
    where they are tied that closely."""
    runtime = class_map is not None
    if class_map is None:
        with torch.no_grad():
            class_map = graph(image)
    ref = mmseg_class_map(model, image, cfg)
    ours = torch.as_tensor(np.asarray(class_map)).round().to(
        ref.dtype).reshape(ref.shape)
    differ = ours != ref
    out = dict(pixels=int(ref.numel()), differing_pixels=int(differ.sum()),
               classes_present=int(ref.unique().numel()))
    if not runtime:
        return dict(out, ok=not bool(differ.any()))
    with torch.no_grad():
        logits = graph.logits(image)[0]
    top2 = logits.topk(2, dim=0).values
    tied = (top2[0] - top2[1]) <= RTOL * max(float(logits.abs().max()), 1.)
    return dict(out, near_tied_pixels=int(tied.sum()),
                differing_outside_ties=int((differ & ~tied).sum()),
                ok=not bool((differ & ~tied).any()))


def check_detections(model: nn.Module, graph: DetectorGraph, cfg: Config,
                     image: torch.Tensor, found: dict) -> dict:
    """A runtime's final detections (labels, scores, boxes in input pixels,
    NMS done inside its graph) against mmdet's ``predict`` at the config's
    ``test_cfg``, paired as sets. A graph without mmdet's per-level
    ``nms_pre`` is compared with mmdet run without it where it binds on
    this image (said in ``nms_pre``)."""
    head = graph.detector.bbox_head
    cfg_test = dict(head.test_cfg)
    with torch.no_grad():
        confidence, _ = graph(image)
    thr, pre = cfg_test.get('score_thr', 0.), cfg_test.get('nms_pre', -1)
    binds = pre > 0 and any(int((c > thr).sum()) > pre
                            for c in confidence.split(graph.level_sizes))
    variant = dict(cfg_test, nms_pre=confidence.numel()) if binds else None
    ref = mmdet_predictions(model, image, cfg, variant)
    ours = InstanceData(
        bboxes=torch.as_tensor(found['bboxes'], dtype=torch.float32),
        scores=torch.as_tensor(found['scores'], dtype=torch.float32),
        labels=torch.as_tensor(found['labels'], dtype=torch.long))
    out = compare_detections(ours, ref, ordered=False,
                             box_atol=SET_BOX_SHARE * max(graph.input_hw),
                             score_atol=SET_SCORE_ATOL)
    out['nms_pre'] = ('binds on this image: mmdet run without it'
                      if binds else 'does not bind on this image')
    return out


def _reference(fused: nn.Module, graph: nn.Module, cfg: Config,
               image: torch.Tensor, predictions) -> dict:
    """One runtime's predictions (``(kind, value)`` from a backend's
    complete model) against mmdet's or mmseg's."""
    kind, value = predictions
    if kind == 'scores_boxes':
        return check_detector(fused, graph, cfg, image, value)
    if kind == 'detections':
        return dict(post_nms=check_detections(fused, graph, cfg, image,
                                              value))
    return check_segmentor(fused, graph, cfg, image, value)


def full_model_section(exporter, cfg: Config, model: nn.Module,
                       fused: nn.Module, prefused: bool) -> dict:
    """The report's ``full_model``: a complete detector or segmentor in
    every backend that holds one (``exporter``: the deploy tool's exporter,
    whose ``x`` sets the input size), or for a classifier the network
    without post-processing."""
    unfused = None if prefused else model
    if task_of(model) == 'classification':
        return exporter.target('model', fused, unfused)
    hw = tuple(exporter.x.shape[-2:])
    graph = build_graph(fused, cfg, hw)
    image = check_image(hw)
    ex = dataclasses.replace(exporter, x=image)
    labels = class_names(cfg, graph.num_classes)
    section = dict(task=task_of(model), classes=labels,
                   input=dict(height=hw[0], width=hw[1],
                              **dataclasses.asdict(graph.norm)),
                   check_image=f'random pixels 0..255 (seed 0), '
                               f'{hw[0]}x{hw[1]}')
    predictions, programs = {}, {}
    section.update({name: None for name in BACKEND_NAMES})  # not chosen
    for name in exporter.options.backends:
        backend = get_backend(name)
        sub = backend.complete(ex, graph, image, labels)
        section[name] = sub
        if sub is None:
            continue
        if 'predictions' in sub:
            predictions[name] = sub.pop('predictions')
        if backend.cannot_run() is None:
            programs[name] = (name, sub['path'])
            if sub.get('network_path'):
                programs[f'{name}_network'] = (name, sub['network_path'])
    models = dict(fused=graph)
    if unfused is not None:
        models['unfused'] = build_graph(unfused, cfg, hw)
    timed = ex.time(programs, models, image)
    for key in programs:
        if key in section:
            section[key].update(timed[key])
    for name in predictions:
        net = timed.get(f'{name}_network')
        if net:
            whole = section[name]['latency_ms_by_threads']
            alone = net['latency_ms_by_threads']
            share = {n: whole[n]['min'] / alone[n]['min'] - 1 for n in alone}
            section[name].update(
                network_latency_ms=net['latency_ms'],
                network_latency_ms_by_threads=alone,
                postprocess_share_by_threads=share,
                postprocess_share=share[max(share, key=int)])
    section['torch'] = torch_section(timed)
    exporter.log('checking the predictions against '
                 + ('mmdet' if task_of(model) == 'detection' else 'mmseg'))
    check = check_detector if isinstance(graph, DetectorGraph) \
        else check_segmentor
    section['reference'] = dict(pytorch=check(fused, graph, cfg, image))
    for name, pred in predictions.items():
        section['reference'][name] = _reference(fused, graph, cfg, image,
                                                pred)
    section.update(verification(section))
    return section


def _package_line(c: dict, system: str) -> str:
    image = c['inputs'][0]
    outs = ', '.join(
        f'{o["name"]} ' + ' x '.join(f'{s[0]}..{s[1]}' if isinstance(s, list)
                                     and s[0] != s[1] else
                                     str(s[0] if isinstance(s, list) else s)
                                     for s in o['shape'])
        for o in c['outputs'])
    line = (f'Core ML package read back on {system}: {c["kind"]} '
            f'({c["ops"].get("conv", 0)} conv'
            + (', then NonMaximumSuppression' if c['nms'] else '')
            + f'), input image {image["color"]} {image["width"]}x'
            f'{image["height"]}, outputs {outs}, '
            f'{len(c["metadata"]["classes"])} class labels in the metadata')
    if c['nms']:
        n = c['nms']
        line += (f' and the NMS; NMS IoU {n["iou_threshold"]:g}, confidence '
                 f'{n["confidence_threshold"]:g}, '
                 f'{"per class" if n["per_class"] else "across classes"}, '
                 f'at most {n["max_detections"]} boxes')
    w = c['conv_weights']
    return line + (f'; {w["convs"]} conv weights equal PyTorch\'s (BN '
                   f'folded; max relative diff {w["max_rel_diff"]:.2g})')


def _reference_lines(task: str, name: str, r: dict) -> List[str]:
    if task != 'detection':
        exact = 'pixel for pixel' if not r['differing_pixels'] else \
            f'but for {r["differing_pixels"]} of the ' \
            f'{r["near_tied_pixels"]} pixels whose two best logits are ' \
            f'tied to float rounding'
        return [f'{name}: the class map equals mmseg\'s predict {exact} '
                f'({r["pixels"]} pixels, {r["classes_present"]} classes '
                f'present)'] if r['ok'] else []
    if not all(v['ok'] for v in r.values()):
        return []
    lines = []
    if 'pre_nms' in r:
        pre = r['pre_nms']
        lines.append(f'{name}: boxes and scores of all {pre["detections"]} '
                     f'(anchor, class) pairs equal mmdet\'s predict_by_feat('
                     f'with_nms=False) (max |box diff| '
                     f'{pre["max_abs_box_diff"]:.2g} px, max |score diff| '
                     f'{pre["max_abs_score_diff"]:.2g})')
    counts = f'{r["post_nms"]["detections"]} detections at the config\'s ' \
        f'test_cfg' + (f', {r["post_nms_all_scores"]["detections"]} at '
                       f'score_thr 0' if 'post_nms_all_scores' in r else '')
    if 'nms_pre' in r['post_nms']:  # NMS inside the runtime's graph
        p = r['post_nms']
        return lines + [f'{name}: its detections (NMS inside the graph) '
                        f'equal mmdet\'s predict as a set: {counts} (max '
                        f'|box diff| {p["max_abs_box_diff"]:.2g} px, max '
                        f'|score diff| {p["max_abs_score_diff"]:.2g}; '
                        f'nms_pre {p["nms_pre"]})']
    return lines + [f'{name}: the outputs through mmdet\'s post-processing '
                    f'(per-level score_thr and nms_pre, mmcv batched_nms per '
                    f'class, max_per_img) equal mmdet\'s predict: {counts}']


def verification(section: dict) -> dict:
    """``verified``: one line per check that passed here, with its
    figures; ``not_verified``: what this OS cannot check; ``differences``:
    where the Core ML model differs from mmdet by design."""
    system = platform.system()
    verified: List[str] = []
    for key, checks in section['reference'].items():
        name = 'PyTorch' if key == 'pytorch' else get_backend(key).title
        verified += _reference_lines(section['task'], f'{name} on {system}',
                                     checks)
    c, not_verified = section.get('coreml'), []
    if c and c['ok']:
        verified.append(_package_line(c, system))
    if c and c['macos_check'] is not None:
        verified.append(f'Core ML on macOS against PyTorch: '
                        f'{c["macos_check"]}')
    elif c:
        not_verified.append(f'Core ML\'s predictions'
                            + (' (its NMS included)' if c['nms'] else '')
                            + f' and latency: Core ML predicts only on '
                            f'macOS; this is {system}')
    differences = [line for name in BACKEND_NAMES if section.get(name)
                   for line in get_backend(name).differences] \
        if section['task'] == 'detection' else []
    return dict(verified=verified, not_verified=not_verified,
                differences=differences)
