"""A config's test set and its own metric, computed for PyTorch and for ONNX
Runtime sessions in one pass over the data.

The data loader and the evaluator are built from the config by mmengine
(``Runner.build_dataloader``, ``Evaluator``), each batch goes through the
model's ``data_preprocessor``, and an ONNX Runtime session's raw outputs
(the network in ``mode='tensor'``) are post-processed by the model's own
head code: mmdet's ``bbox_head.predict_by_feat`` (box decoding and NMS),
mmseg's ``decode_head.predict_by_feat`` + ``postprocess_result``, mmpretrain's
``head._get_predictions``. Only the glue between them is written here.
"""
import copy
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mobileone_mm.utils.errors import UserError
from .compare import flatten

__all__ = ['PRIMARY_METRICS', 'build_test_loader', 'evaluate',
           'half_predictor', 'ort_predictor',
           'primary_metric',
           'task_of', 'torch_predictor', 'unflatten']

# A predictor: preprocessed inputs and their data samples -> data samples
# with predictions (what ``model(..., mode='predict')`` returns).
Predictor = Callable[[torch.Tensor, list], list]
# The headline metric of each task's evaluator, in the order looked for.
PRIMARY_METRICS = ('coco/bbox_mAP', 'accuracy/top1', 'mIoU')


class DataNotFound(UserError):
    """The config names no data set, or its files are missing."""


def innermost_dataset(dataset: dict) -> dict:
    """The dataset config that owns the pipeline (wrappers such as
    ``RepeatDataset`` or ``ClassBalancedDataset`` nest it in ``dataset``)."""
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'),
                                                   dict):
        dataset = dataset['dataset']
    return dataset


def data_location(dataset: dict) -> str:
    """Where a dataset config reads from (for error messages)."""
    inner = innermost_dataset(dataset)
    root = inner.get('data_root') or ''
    ann = inner.get('ann_file') or ''
    return osp.join(root, ann) if ann else (root or '<no data_root>')


def check_shape(x: np.ndarray, input_shape: Sequence[int], what: str) -> None:
    if tuple(x.shape[1:]) != tuple(input_shape[1:]):
        raise UserError(
            f'{what} come out of the test pipeline at {tuple(x.shape[2:])} '
            f'but the model is exported at {tuple(input_shape[2:])}: make '
            f'the test pipeline resize to the config\'s input size '
            f'(input_size/crop_size)')


def task_of(model: nn.Module) -> str:
    """``'detection'``, ``'segmentation'`` or ``'classification'``, from the
    model's heads (mmdet, mmseg and mmpretrain name them so)."""
    if hasattr(model, 'bbox_head'):
        return 'detection'
    if hasattr(model, 'decode_head'):
        return 'segmentation'
    if hasattr(model, 'head'):
        return 'classification'
    raise UserError(f'{type(model).__name__} is not an mmdet detector, an '
                    f'mmseg segmentor or an mmpretrain classifier: --eval '
                    f'needs one of them')


def unflatten(template, flat: List[torch.Tensor]):
    """``flat`` (as :func:`compare.forward_tensors` flattens) put back into
    the nested lists/tuples/dicts of ``template``."""
    it = iter(flat)

    def build(obj):
        if isinstance(obj, torch.Tensor):
            return next(it)
        if isinstance(obj, (list, tuple)):
            return type(obj)(build(o) for o in obj)
        if isinstance(obj, dict):
            return {k: build(v) for k, v in obj.items()}
        return obj

    return build(template)


def postprocess(model: nn.Module, raw, data_samples: list) -> list:
    """The model's own post-processing of its ``mode='tensor'`` outputs
    ``raw``, as its ``predict`` does it after the forward pass."""
    metas = [s.metainfo for s in data_samples]
    task = task_of(model)
    if task == 'detection':
        results = model.bbox_head.predict_by_feat(
            *raw, batch_img_metas=metas, rescale=True)
        return model.add_pred_to_datasample(data_samples, results)
    if task == 'segmentation':
        logits = model.decode_head.predict_by_feat(raw, metas)
        return model.postprocess_result(logits, data_samples)
    return model.head._get_predictions(raw, data_samples)


def torch_predictor(model: nn.Module) -> Predictor:
    """PyTorch: the model's own ``predict`` (its forward and head)."""
    def predict(inputs: torch.Tensor, data_samples: list) -> list:
        with torch.no_grad():
            return model(inputs, data_samples, mode='predict')

    return predict


def half_predictor(model: nn.Module) -> Predictor:
    """The network in half precision (a copy of ``model``, weights and
    arithmetic fp16, as a phone's fp16 runtime computes it), its raw outputs
    post-processed in float32 by ``model``'s heads: what a CPU without fp16
    arithmetic can measure of an fp16 deployment."""
    half = copy.deepcopy(model).eval().half()

    def predict(inputs: torch.Tensor, data_samples: list) -> list:
        with torch.no_grad():
            raw = half(inputs.half(), mode='tensor')
            template = raw
            flat = [t.float() for t in flatten(raw)]
        return postprocess(model, unflatten(template, flat), data_samples)

    return predict


def ort_predictor(session, model: nn.Module,
                  example: torch.Tensor) -> Predictor:
    """An ONNX Runtime session of the exported network (static batch 1: run
    image by image), post-processed by ``model``'s heads. ``example`` gives
    the nesting of the network's outputs."""
    with torch.no_grad():
        template = model.eval()(example, mode='tensor')
    name = session.get_inputs()[0].name

    def predict(inputs: torch.Tensor, data_samples: list) -> list:
        x = inputs.float().numpy()
        check_shape(x, example.shape, 'test images')
        per_image = [session.run(None, {name: x[i:i + 1]})
                     for i in range(x.shape[0])]
        flat = [torch.from_numpy(np.concatenate(outs))
                for outs in zip(*per_image)]
        return postprocess(model, unflatten(template, flat), data_samples)

    return predict


def build_test_loader(cfg: Config):
    """The config's test data loader (mmengine builds it, as for testing)."""
    loader = cfg.get('test_dataloader')
    if not loader or not cfg.get('test_evaluator'):
        raise UserError('--eval needs the config\'s test_dataloader and '
                        'test_evaluator; add them or drop --eval')
    # the data set's registry (mmdet, mmseg, mmpretrain), as the runner has
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    try:
        return Runner.build_dataloader(copy.deepcopy(loader))
    except (FileNotFoundError, NotADirectoryError) as err:
        raise DataNotFound(
            f'test data not found ({data_location(loader["dataset"])}: '
            f'{err}); generate or download it, or point the config at it: '
            f'--cfg-options test_dataloader.dataset.data_root=DIR')
    except (ValueError, TypeError, KeyError) as err:  # settings that clash
        raise UserError(f'cannot build the config\'s test_dataloader: '
                        f'{err}; fix it in the config or --cfg-options')


def evaluate(cfg: Config, model: nn.Module,
             predictors: Dict[str, Predictor]) -> Dict[str, Dict[str, float]]:
    """The config's test metric for every predictor, in one pass over the
    test set (the same preprocessed batch goes to each, with its own copy
    of the data samples and its own evaluator).

    Args:
        cfg: The config (its ``test_dataloader`` and ``test_evaluator``).
        model: Gives the ``data_preprocessor`` (test mode).
        predictors: Name -> :data:`Predictor`.

    Returns:
        Name -> the evaluator's metrics (e.g. ``{'coco/bbox_mAP': ...}``).
    """
    loader = build_test_loader(cfg)
    evaluators = {}
    for key in predictors:
        evaluators[key] = Evaluator(copy.deepcopy(cfg.test_evaluator))
        evaluators[key].dataset_meta = loader.dataset.metainfo
    for batch in loader:
        with torch.no_grad():
            data = model.data_preprocessor(batch, False)
        for key, predict in predictors.items():
            samples = predict(data['inputs'],
                              copy.deepcopy(data['data_samples']))
            evaluators[key].process(data_samples=samples, data_batch=batch)
    size = len(loader.dataset)
    return {key: {k: _number(v) for k, v in ev.evaluate(size).items()}
            for key, ev in evaluators.items()}


def _number(value):
    """A metric as plain JSON (evaluators return floats, numpy scalars or
    tensors; NaN, e.g. a class absent from a tiny test set, is ``None``)."""
    value = np.asarray(value.cpu() if isinstance(value, torch.Tensor)
                       else value, dtype=np.float64)
    if value.size != 1:
        return [None if np.isnan(v) else float(v) for v in value.ravel()]
    return None if np.isnan(value) else float(value)


def primary_metric(metrics: Optional[Dict[str, float]]) -> Optional[str]:
    """The headline key of an evaluator's metrics (:data:`PRIMARY_METRICS`,
    else the first key)."""
    if not metrics:
        return None
    for key in PRIMARY_METRICS:
        if key in metrics:
            return key
    return next(iter(metrics))

