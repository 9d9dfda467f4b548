"""Load a config and build its model (classifier, detector, segmentor)."""
import os
import re
from typing import Optional, Tuple

import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import mobileone_mm.models  # noqa: F401  (registers MobileOne and the heads)
from mobileone_mm.checkpoint.fit import check_fit, read_weights
from mobileone_mm.checkpoint.loaders import is_url
from mobileone_mm.utils.errors import UserError


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config; a missing/broken file or options that do not fit it
    raise :class:`UserError` with one line instead of a parser traceback.

    Example:
        >>> load_config('no/such/config.py')
        Traceback (most recent call last):
        ...
        mobileone_mm.utils.errors.UserError: config not found: no/such/config.py
    """
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
    load a checkpoint (file or URL, read as data) strictly: one that does
    not fit (another variant, form or task) stops with the fit check's
    one line (:func:`mobileone_mm.checkpoint.fit.check_fit`)."""
    state = None
    if checkpoint is not None:  # read first: a bad file stops before any build
        if not is_url(checkpoint) and not os.path.isfile(checkpoint):
            raise UserError(f'checkpoint not found: {checkpoint}')
        state = read_weights(checkpoint)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    try:
        model = MODELS.build(cfg.model)
    except UserError as err:  # e.g. an unknown arch, deep inside the model
        # mmengine prefixes "class `X` in FILE: " for every level it built
        raise UserError(re.sub(r'^(class `[^`]+` in [^:]+: )+', '', str(err)))
    if state is not None:
        check_fit(model.state_dict(), state, checkpoint,
                  getattr(cfg, 'filename', None) or 'the config', advice='')
        # strict after the check: only BN's num_batches_tracked may lack
        model.load_state_dict(state, strict=False)
    return model.to(device).eval()


def input_shape_from_config(cfg: Config) -> Tuple[int, int, int, int]:
    """``(1, 3, H, W)`` at the config's training/eval resolution.

    Example:
        >>> input_shape_from_config(Config(dict(crop_size=(96, 128))))
        (1, 3, 96, 128)
    """
    for key in ('input_size', 'crop_size', 'img_scale'):
        size = cfg.get(key)
        if size is not None:
            size = (size, size) if isinstance(size, int) else tuple(size)
            return (1, 3, int(size[0]), int(size[1]))
    return (1, 3, 224, 224)
