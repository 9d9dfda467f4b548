"""mmdeploy 1.3.1 on this project's stack: conversion with our configs, the
few things it needs, and a check of the backend against PyTorch.

What mmdeploy needs here (measured; the tests show each):

* nothing for the backbone: mmdeploy's ``BaseTask.build_pytorch_model``
  calls ``model.backbone.switch_to_deploy()``, so the exported graph holds
  the fused, branch-free MobileOne;
* ``dynamo=False`` for ``torch.onnx.export`` on torch >= 2.9, whose default
  exporter (dynamo) cannot trace mmdeploy's rewritten models. Torch 2.7.1
  (the tested pin) already defaults to ``dynamo=False``; the patch below
  changes nothing there and is applied only around mmdeploy's export call;
* its ``aenum`` dependency, installed beside the ``--no-deps`` wheel
  (mmdeploy's ``protobuf<=3.20.2`` pin would downgrade onnx; see
  requirements/constraints.txt).

What it cannot do with the PyPI wheel: a Core ML export of a *detector*.
mmdeploy's Core ML route is PyTorch -> TorchScript -> coremltools, and its
detection post-processing is a TorchScript custom op (NMS) from
``libmmdeploy_torchscript_ops.so``, which the wheel does not ship.
"""
import contextlib
import functools
import os
import warnings
from typing import Dict, List, Optional, Sequence

import torch

from mobileone_mm.apis import build_model, load_config
from mobileone_mm.checkpoint import read_state_dict
from mobileone_mm.checkpoint.fit import check_fit
from mobileone_mm.utils.compat import dynamo_is_default
from mobileone_mm.utils.errors import UserError

CORE_ML_DETECTION_HINT = (
    "mmdeploy's Core ML export of a detector needs mmdeploy's TorchScript "
    'custom ops (NMS, libmmdeploy_torchscript_ops.so), which the PyPI wheel '
    'does not ship; export the complete detector (Core ML NMS) instead: '
    'python tools/deploy.py CONFIG --full-model --backends coreml')


def require_mmdeploy():
    try:
        import mmdeploy
    except ImportError:
        raise UserError('mmdeploy is not installed: pip install --no-deps '
                        'mmdeploy==1.3.1 aenum (see requirements/constraints.txt)')
    return mmdeploy


@contextlib.contextmanager
def torchscript_onnx_exporter():
    """Make ``torch.onnx.export`` default to the TorchScript exporter
    (``dynamo=False``) while mmdeploy exports; a no-op where that is already
    the default (torch < 2.9)."""
    if not dynamo_is_default():
        yield
        return
    original = torch.onnx.export

    @functools.wraps(original)
    def export(*args, **kwargs):
        kwargs.setdefault('dynamo', False)
        return original(*args, **kwargs)

    torch.onnx.export = export
    try:
        yield
    finally:
        torch.onnx.export = original


def default_image() -> str:
    """matplotlib's sample photograph (the OpenMMLab wheels ship no demo
    image and mmdeploy's conversion needs one)."""
    import matplotlib
    return os.path.join(os.path.dirname(matplotlib.__file__), 'mpl-data',
                        'sample_data', 'grace_hopper.jpg')


def _load(deploy_cfg, model_cfg):
    from mmdeploy.utils import load_config
    for path in (deploy_cfg, model_cfg):
        if isinstance(path, str) and not os.path.isfile(path):
            raise UserError(f'config not found: {path}')
    return load_config(deploy_cfg, model_cfg)


def check_checkpoint(model_cfg, checkpoint: str, name: str) -> None:
    """Stop unless ``checkpoint`` loads strictly into the model of
    ``model_cfg`` (named ``name`` in the message).

    mmdeploy loads checkpoints non-strictly: a checkpoint of another variant,
    task or structure (fused/unfused) would be exported as a partly random
    model. The file is read as data (``weights_only=True``) before mmdeploy
    reads it, and checked with the tools' one fit check
    (:func:`mobileone_mm.checkpoint.fit.check_fit`).

    Raises:
        UserError: naming a few missing, unexpected and mis-shaped keys, the
            file's variant, the config's and the fix.
    """
    file_state = read_state_dict(checkpoint)
    check_fit(build_model(model_cfg).state_dict(), file_state, checkpoint,
              name, advice='; mmdeploy would load it partly and export '
              'random weights for the rest')


def convert(deploy_cfg, model_cfg, checkpoint: Optional[str], work_dir: str,
            img: Optional[str] = None, device: str = 'cpu') -> List[str]:
    """What mmdeploy's ``tools/deploy.py`` does (the wheel does not ship
    it): export the intermediate representation (ONNX or TorchScript) with
    ``torch2onnx``/``torch2torchscript``, then build the backend files.
    Returns the backend files (the ``.onnx`` for ONNX Runtime, the
    ``.mlpackage`` for Core ML). A checkpoint must fit the model strictly
    (:func:`check_checkpoint`)."""
    require_mmdeploy()
    from mmdeploy.apis import torch2onnx, torch2torchscript
    from mmdeploy.backend.base import get_backend_manager
    from mmdeploy.utils import Backend, get_backend, get_ir_config
    name = model_cfg if isinstance(model_cfg, str) else 'the model config'
    deploy_cfg, model_cfg = _load(deploy_cfg, model_cfg)
    if checkpoint is None:
        warnings.warn('no checkpoint: converting a model with random weights')
    elif not os.path.isfile(checkpoint):
        raise UserError(f'checkpoint not found: {checkpoint}')
    else:
        check_checkpoint(model_cfg, checkpoint, name)
    img = img or default_image()
    if not os.path.isfile(img):
        raise UserError(f'image not found: {img}')
    os.makedirs(work_dir, exist_ok=True)
    ir_cfg = get_ir_config(deploy_cfg)
    ir_file = os.path.join(work_dir, ir_cfg['save_file'])
    backend = get_backend(deploy_cfg)
    task = deploy_cfg.codebase_config.get('task')
    if backend == Backend.COREML and task == 'ObjectDetection':
        from mmdeploy.backend.torchscript import ops_available
        if not ops_available():  # mmdeploy would assert deep inside tracing
            raise UserError(CORE_ML_DETECTION_HINT)
    args = (img, work_dir, ir_cfg['save_file'], deploy_cfg, model_cfg,
            checkpoint, device)
    if ir_cfg['type'] == 'onnx':
        with torchscript_onnx_exporter():
            torch2onnx(*args)
    elif ir_cfg['type'] == 'torchscript':
        torch2torchscript(*args)
    else:
        raise UserError(f"unsupported IR {ir_cfg['type']!r} in the deploy config")
    if backend == Backend.ONNXRUNTIME:
        return [ir_file]
    manager = get_backend_manager(backend.value)
    return list(manager.to_backend([ir_file], work_dir, deploy_cfg,
                                   device=device))


def random_checkpoint(model_cfg: str, path: str) -> str:
    """Save the config's model with random weights (no ImageNet checkpoint
    needed), so that the conversion and the PyTorch check use one model."""
    cfg = load_config(model_cfg)
    cfg.model.backbone.init_cfg = None
    model = build_model(cfg)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def compare(outputs: Dict[str, object]) -> Dict[str, float]:
    """Differences between the backend's and PyTorch's predictions (from
    :func:`predict_both`): detections or per-pixel classes. The segmentation
    graph takes the argmax at the input size and mmdeploy resizes that class
    map to the image, where mmseg resizes the logits: pixels on class borders
    may differ unless the image has the input size."""
    backend, ref = outputs['backend'], outputs['torch']
    if 'pred_instances' in ref:
        a, b = backend.pred_instances, ref.pred_instances
        n = min(len(a.scores), len(b.scores))
        return dict(
            detections=len(b.scores), backend_detections=len(a.scores),
            max_score_diff=float((a.scores[:n] - b.scores[:n]).abs().max()) if n else 0.,
            max_bbox_diff=float((a.bboxes[:n] - b.bboxes[:n]).abs().max()) if n else 0.,
            labels_equal=bool((a.labels[:n] == b.labels[:n]).all()))
    a, b = backend.pred_sem_seg.data, ref.pred_sem_seg.data
    return dict(pixels=int(b.numel()),
                pixel_agreement=float((a == b).float().mean()))


def predict_both(deploy_cfg, model_cfg, checkpoint: Optional[str],
                 backend_files: Sequence[str], img: Optional[str] = None,
                 device: str = 'cpu') -> Dict[str, object]:
    """Run the backend model (mmdeploy's wrapper, e.g. ONNX Runtime) and the
    PyTorch model on the same preprocessed image, each with the configs as
    given; returns both data samples (mmdet ``DetDataSample`` / mmseg
    ``SegDataSample``). Detections above both pipelines' per-level candidate
    cuts agree; mmdeploy 1.3.1 ranks a level's boxes for its cut without the
    last class (docs/en/user_guides/mmdeploy.md)."""
    require_mmdeploy()
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import get_input_shape
    deploy_cfg, model_cfg = _load(deploy_cfg, model_cfg)
    processor = build_task_processor(model_cfg, deploy_cfg, device)
    backend_model = processor.build_backend_model(list(backend_files))
    torch_model = processor.build_pytorch_model(checkpoint)
    data, _ = processor.create_input(img or default_image(),
                                     get_input_shape(deploy_cfg))
    with torch.no_grad():
        return dict(backend=backend_model.test_step(data)[0],
                    torch=torch_model.test_step(data)[0])
