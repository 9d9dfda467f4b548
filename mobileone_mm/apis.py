"""Build any project model (classifier, detector, segmentor) from its config."""
import os
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config


class UserError(RuntimeError):
    """Bad input from the command line; tools print it as one line."""


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config; a missing/broken file or options that do not fit it
    raise :class:`UserError` with one line instead of a parser traceback."""
    if not os.path.isfile(path):
        raise UserError(f'config not found: {path}')
    try:
        cfg = Config.fromfile(path)
    except Exception as err:  # syntax/merge errors: say which file, no trace
        raise UserError(f'cannot load config {path}: {type(err).__name__}: '
                        + str(err).strip().splitlines()[-1][:300])
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except (TypeError, KeyError, ValueError) as err:
            raise UserError(f'--cfg-options do not fit {path}: {err}')
    return cfg


def build_model(cfg: Config, checkpoint: Optional[str] = None,
                device: str = 'cpu') -> nn.Module:
    """Build ``cfg.model`` in the config's ``default_scope`` and optionally
    load a checkpoint (strictly: a checkpoint of another variant fails)."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint

    import mobileone_mm  # noqa: F401  (registers MobileOne)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        if not os.path.isfile(checkpoint):
            raise UserError(f'checkpoint not found: {checkpoint}')
        try:
            load_checkpoint(model, checkpoint, map_location='cpu',
                            strict=True, logger='silent')
        except RuntimeError as err:
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
            raise UserError(f'{checkpoint} does not fit this config: '
                            + ' '.join(lines)[:400])
    return model.to(device).eval()


def input_shape_from_config(cfg: Config) -> Tuple[int, int, int, int]:
    """``(1, 3, H, W)`` at the config's training/eval resolution."""
    for key in ('input_size', 'crop_size', 'img_scale'):
        size = cfg.get(key)
        if size is not None:
            size = (size, size) if isinstance(size, int) else tuple(size)
            return (1, 3, int(size[0]), int(size[1]))
    return (1, 3, 224, 224)


def forward_tensors(model: nn.Module, x: torch.Tensor) -> Sequence[torch.Tensor]:
    """Raw network outputs (no post-processing) as a flat list of tensors."""
    with torch.no_grad():
        if hasattr(model, 'data_preprocessor'):
            out = model(x, mode='tensor')
        else:
            out = model(x)
    flat = []

    def walk(obj):
        if isinstance(obj, torch.Tensor):
            flat.append(obj)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                walk(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                walk(item)

    walk(out)
    return flat


def max_abs_diff(model_a: nn.Module, model_b: nn.Module,
                 x: torch.Tensor) -> Tuple[float, float]:
    """Largest absolute output difference and the largest reference output."""
    outs_a, outs_b = forward_tensors(model_a, x), forward_tensors(model_b, x)
    if len(outs_a) != len(outs_b):
        raise RuntimeError('the two models return different outputs')
    diff = max(float((a - b).abs().max()) for a, b in zip(outs_a, outs_b))
    scale = max(float(a.abs().max()) for a in outs_a)
    return diff, scale
