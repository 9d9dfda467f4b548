"""The whole detector or segmentor as one traceable torch graph, image in,
decoded predictions out: what the complete Core ML model runs
(:mod:`mobileone_mm.deploy.backends.coreml.complete`), and what ONNX Runtime and PyTorch
run to check it against mmdet's and mmseg's own predictions on Linux.

- :class:`DetectorGraph`: normalization, the fused network, mmdet's anchors
  (``bbox_head.prior_generator.grid_priors`` at the deploy input size, a
  constant) and the head's box decoding and class scores. Outputs
  ``confidence`` (boxes x classes, background dropped) and ``coordinates``
  (boxes x 4: centre x, centre y, width, height, normalized to the input,
  origin at its top-left corner): the layout of Core ML's
  ``NonMaximumSuppression`` model and so of Apple's detector pipelines.
- :class:`SegmentorGraph`: normalization, the fused network, logits resized
  to the input as mmseg does, argmax: the class map.

Both take pixel values 0..255 in the channel order the network was trained
on (RGB for a config with ``bgr_to_rgb=True``), as a Core ML image input
gives them.
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.ops import batched_nms
from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
from mmengine.config import Config
from mmengine.registry import DATASETS

from mobileone_mm.utils.errors import UserError

# mmdet's default of DeltaXYWHBBoxCoder.decode (predict_by_feat passes none).
WH_RATIO_CLIP = 16 / 1000


@dataclass(frozen=True)
class Normalization:
    """The config's ``data_preprocessor``: ``(x - mean) / std`` on pixels in
    ``channel_order`` (the order the network sees)."""
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    channel_order: str  # 'RGB' or 'BGR'

    @classmethod
    def from_config(cls, cfg: Config) -> 'Normalization':
        """mmcv loads images as BGR; ``bgr_to_rgb`` makes the network see
        RGB. mean/std are in the network's order, as mmengine applies them
        after the channel swap.

        Example:
            >>> Normalization.from_config(Config(dict(model=dict(
            ...     data_preprocessor=dict(mean=[1, 2, 3], std=[4, 5, 6],
            ...                            bgr_to_rgb=True))))).channel_order
            'RGB'
        """
        pre = cfg.model.get('data_preprocessor') or {}
        mean, std = pre.get('mean'), pre.get('std')
        rgb = bool(pre.get('bgr_to_rgb', False))
        return cls(tuple(float(m) for m in (mean or (0., 0., 0.))),
                   tuple(float(s) for s in (std or (1., 1., 1.))),
                   'RGB' if rgb else 'BGR')

    @property
    def swaps_channels(self) -> bool:
        """Whether mmengine's preprocessor swaps loaded (BGR) channels."""
        return self.channel_order == 'RGB'


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, in the graph: Core ML's image input
    scales all channels by one number, which cannot express the config's
    per-channel std."""

    def __init__(self, norm: Normalization) -> None:
        super().__init__()
        self.register_buffer('mean', torch.tensor(norm.mean).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(norm.std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _check_head(head: nn.Module) -> DeltaXYWHBBoxCoder:
    """The head must be what :class:`DetectorGraph` reproduces."""
    coder = getattr(head, 'bbox_coder', None)
    if not hasattr(head, 'prior_generator') or \
            type(coder) is not DeltaXYWHBBoxCoder or coder.add_ctr_clamp:
        raise UserError(
            f'--full-model decodes anchor heads with DeltaXYWHBBoxCoder '
            f'(SSD, RetinaNet); {type(head).__name__} with '
            f'{type(coder).__name__} is not supported: export without '
            f'--full-model')
    return coder


class DetectorGraph(nn.Module):
    """Image -> ``(confidence, coordinates)`` for every anchor; see the
    module doc. ``level_sizes`` holds the anchors per level (mmdet applies
    ``nms_pre`` per level)."""

    def __init__(self, detector: nn.Module, cfg: Config,
                 input_hw: Sequence[int]) -> None:
        super().__init__()
        head = detector.bbox_head
        coder = _check_head(head)
        self.detector, self.norm = detector, Normalization.from_config(cfg)
        self.normalize = Normalize(self.norm)
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.sigmoid = bool(head.use_sigmoid_cls)
        self.num_classes, self.cls_channels = head.num_classes, \
            head.cls_out_channels
        with torch.no_grad():
            cls_scores, _ = self._raw(torch.zeros(1, 3, *self.input_hw))
        priors = head.prior_generator.grid_priors(
            [c.shape[-2:] for c in cls_scores], device='cpu')
        self.level_sizes = [len(p) for p in priors]
        priors = torch.cat(priors)
        # constants of mmdet's delta2bbox, computed once as it computes them
        self.register_buffer('prior_xy', (priors[:, :2] + priors[:, 2:]) * 0.5)
        self.register_buffer('prior_wh', priors[:, 2:] - priors[:, :2])
        self.register_buffer('means', torch.tensor(coder.means).view(1, 4))
        self.register_buffer('stds', torch.tensor(coder.stds).view(1, 4))
        h, w = self.input_hw
        self.register_buffer('size', torch.tensor([w, h], dtype=torch.float))
        self.clip = bool(coder.clip_border)
        self.max_ratio = float(np.abs(np.log(WH_RATIO_CLIP)))

    def _raw(self, image: torch.Tensor):
        x = self.detector.extract_feat(self.normalize(image))
        return self.detector.bbox_head(x)

    def decode(self, deltas: torch.Tensor) -> torch.Tensor:
        """mmdet's ``delta2bbox`` (anchors ``xyxy`` -> boxes ``xyxy`` in
        pixels, clipped to the input; ``deltas`` ``(N, 4)`` or with leading
        axes, ``(1, N, 4)``), written out of place: its in-place
        ``clamp_`` on strided slices is not safe to convert to Core ML, and
        its result is checked to equal ``bbox_coder.decode``."""
        d = deltas * self.stds + self.means
        xy = self.prior_xy + self.prior_wh * d[..., :2]
        wh = self.prior_wh * d[..., 2:].clamp(-self.max_ratio,
                                              self.max_ratio).exp()
        x1y1, x2y2 = xy - wh * 0.5, xy + wh * 0.5
        if self.clip:
            x1y1 = torch.minimum(x1y1.clamp(min=0), self.size)
            x2y2 = torch.minimum(x2y2.clamp(min=0), self.size)
        return torch.cat([x1y1, x2y2], dim=-1)

    def forward(self, image: torch.Tensor):
        cls_scores, bbox_preds = self._raw(image)
        # mmdet's order within a level: (H, W, anchor), as grid_priors
        logits = torch.cat([c.permute(0, 2, 3, 1).reshape(-1, self.cls_channels)
                            for c in cls_scores])
        deltas = torch.cat([b.permute(0, 2, 3, 1).reshape(-1, 4)
                            for b in bbox_preds])
        # the head's scores: sigmoid, or softmax with background last
        confidence = logits.sigmoid() if self.sigmoid else \
            logits.softmax(-1)[:, :self.num_classes]
        boxes = self.decode(deltas)
        centre = (boxes[:, :2] + boxes[:, 2:]) * 0.5 / self.size
        extent = (boxes[:, 2:] - boxes[:, :2]) / self.size
        return confidence, torch.cat([centre, extent], dim=1)


class SegmentorGraph(nn.Module):
    """Image -> class map ``(H, W)``, as mmseg's ``predict`` for a fixed-size
    input ('whole' inference): logits resized to the input (bilinear, the
    head's ``align_corners``), argmax over classes."""

    def __init__(self, segmentor: nn.Module, cfg: Config,
                 input_hw: Sequence[int]) -> None:
        super().__init__()
        mode = (segmentor.test_cfg or {}).get('mode', 'whole')
        if mode != 'whole' or segmentor.decode_head.out_channels < 2:
            raise UserError(f'--full-model exports segmentors with '
                            f"test_cfg.mode='whole' and 2+ classes (got mode "
                            f'{mode!r}, {segmentor.decode_head.out_channels} '
                            f'output channels): export without --full-model')
        self.segmentor, self.norm = segmentor, Normalization.from_config(cfg)
        self.normalize = Normalize(self.norm)
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.align_corners = bool(segmentor.align_corners)
        self.num_classes = segmentor.decode_head.out_channels

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """The class logits resized to the input, ``(1, C, H, W)``."""
        feats = self.segmentor.extract_feat(self.normalize(image))
        return F.interpolate(self.segmentor.decode_head(feats),
                             size=self.input_hw, mode='bilinear',
                             align_corners=self.align_corners)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logits(image).argmax(dim=1)[0]


def task_of(model: nn.Module) -> str:
    """``'detection'``, ``'segmentation'`` or ``'classification'`` (what a
    complete model can be built for)."""
    if hasattr(model, 'bbox_head'):
        return 'detection'
    if hasattr(model, 'decode_head'):
        return 'segmentation'
    return 'classification'


def build_graph(model: nn.Module, cfg: Config,
                input_hw: Sequence[int]) -> nn.Module:
    """The complete graph of a detector or segmentor, in eval mode."""
    task = task_of(model)
    if task == 'detection':
        return DetectorGraph(model, cfg, input_hw).eval()
    if task == 'segmentation':
        return SegmentorGraph(model, cfg, input_hw).eval()
    raise UserError('--full-model builds complete detectors and segmentors; '
                    'a classifier is exported as its whole network')


def class_names(cfg: Config, num_classes: int) -> List[str]:
    """The config's class names (its test set's ``metainfo``, else its data
    set type's own ``METAINFO``), else ``class0``, ``class1``, ...

    Example:
        >>> class_names(Config(dict(test_dataloader=dict(dataset=dict(
        ...     metainfo=dict(classes=('cat', 'dog')))))), 2)
        ['cat', 'dog']
        >>> class_names(Config(), 2)
        ['class0', 'class1']
    """
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    names = (dataset.get('metainfo') or {}).get('classes')
    kind = dataset.get('type')
    if names is None and isinstance(kind, str):
        scope = cfg.get('default_scope')
        found = DATASETS.get(kind if '.' in kind or not scope
                             else f'{scope}.{kind}')
        names = getattr(found, 'METAINFO', {}).get('classes')
    if names is None or len(names) != num_classes:
        return [f'class{i}' for i in range(num_classes)]
    return [str(n) for n in names]


def coreml_style_nms(confidence: torch.Tensor, coordinates: torch.Tensor,
                     nms: dict) -> Tuple[torch.Tensor, torch.Tensor]:
    """Core ML's documented PickTop rule in PyTorch (mmcv's NMS): a box's
    label is the argmax of its confidences, boxes under the confidence
    threshold are dropped, suppression within a label, at most
    ``max_detections`` kept. What Core ML's boxes are compared with."""
    scores, labels = confidence.max(dim=1)
    keep = (scores >= nms['confidence_threshold']).nonzero()[:, 0]
    xy, wh = coordinates[keep, :2], coordinates[keep, 2:]
    _, order = batched_nms(torch.cat([xy - wh / 2, xy + wh / 2], dim=1),
                           scores[keep], labels[keep],
                           dict(type='nms', iou_threshold=nms['iou_threshold']))
    top = nms['max_detections']
    idx = keep[order][:top if top > 0 else None]
    return confidence[idx], coordinates[idx]
