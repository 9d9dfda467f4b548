"""Whether a checkpoint fits the model it is about to be loaded into: the one
decision and the one message behind every strict load of a user's file.

mmengine loads non-strictly and reports missing, unexpected and mis-shaped
weights only as log warnings, which is how a checkpoint of another variant
(S0 weights in an S2 config), of the other structure (fused/unfused) or of
another task becomes a partly random model. tools/train.py (``load_from``,
``--resume``), tools/test.py, the deploy, reparameterize and quantize tools
(``apis.build_model``), mmdeploy conversion and the backbone's
``Pretrained`` all stop here instead, before anything is built from the
file, with one line in one style::

    PATH does not fit WHAT: WHICH KEYS. The file holds X; the config builds
    Y. Fix: Z

naming the file's MobileOne variant and form (fused or not) and task, the
config's, and the fix.
"""
import os.path as osp
import re
from typing import Dict, List, Mapping, Optional, Tuple

from torch import Tensor

from mobileone_mm.registry import MODELS
from mobileone_mm.utils.errors import UserError, warn
from .formats import ConversionError, closest_variant, is_fused, unwrap
from .loaders import load_any
from .mismatch import few, mismatch_summary, state_dict_mismatch

Shapes = Dict[str, Tuple[int, ...]]

# top-level module -> the kind of model it belongs to
TASKS = (('bbox_head', 'detector'), ('decode_head', 'segmentor'),
         ('head', 'classifier'))


def shapes_of(state: Mapping) -> Shapes:
    """Key -> shape of a state dict (of tensors, or already of shapes)."""
    return {k: tuple(getattr(v, 'shape', v)) for k, v in state.items()}


def runner_state(checkpoint, path: str) -> Dict[str, Tensor]:
    """The weights mmengine's runner loads from ``checkpoint``: its
    ``state_dict`` (else the dict itself), without DataParallel's
    ``module.`` prefix.

    Raises:
        UserError: there is no state dict of tensors in it (the message
            starts with ``path``).

    Example:
        >>> import torch
        >>> shapes_of(runner_state({'state_dict': {'module.fc.weight': torch.zeros(2, 3)}}, 'x.pth'))
        {'fc.weight': (2, 3)}
    """
    try:
        return unwrap(checkpoint, wrappers=('state_dict', ))
    except ConversionError:
        raise UserError(f'{path} holds no state dict of tensors: it is not a '
                        f'model checkpoint; use another file') from None


def read_weights(path_or_url: str) -> Dict[str, Tensor]:
    """The weights mmengine's runner would load from a file or URL
    (:func:`runner_state`), read as data.

    Raises:
        UserError: missing, unreadable, not data only, or no state dict.
    """
    return runner_state(load_any(path_or_url), path_or_url)


def variant(shapes: Mapping) -> Optional[Tuple[str, bool, bool]]:
    """``(arch, fused, complete)`` of the MobileOne whose weights ``shapes``
    (key -> shape or tensor) holds, under ``backbone.`` or bare; ``None``
    when it holds no MobileOne weights. ``complete``: every weight of that
    preset is there with its shape."""
    # the class through the registry: the backbone imports this package (its
    # Pretrained init), so this package does not import the backbone
    mobileone = MODELS.get('MobileOne')
    backbone = {k[len('backbone.'):]: v for k, v in shapes.items()
                if k.startswith('backbone.')} or dict(shapes)
    arch, fused, (missing, foreign, wrong) = closest_variant(backbone,
                                                             mobileone)
    if len(foreign) == len(backbone):
        return None
    return arch, fused, not (missing or wrong)


def name(arch: str, fused: bool) -> str:
    """Example:
        >>> name('s0', True)
        'MobileOne-S0 (fused)'
    """
    return f'MobileOne-{arch.upper()} ({"fused" if fused else "unfused"})'


def task(shapes: Mapping) -> str:
    """What kind of model the weights are: detector, segmentor, classifier,
    a bare backbone, or a model with other modules (named).

    Example:
        >>> task({'backbone.a': (1, ), 'fc.weight': (2, 1)})
        'model (modules backbone, fc)'
    """
    modules = {k.split('.')[0] for k in shapes}
    for module, kind in TASKS:
        if module in modules:
            return kind
    if modules == {'backbone'} or 'backbone' not in modules:
        return 'backbone'
    return f'model (modules {", ".join(sorted(modules))})'


def describe(shapes: Mapping) -> str:
    """The variant, form and task of a state dict, in a few words.

    Example:
        >>> from mobileone_mm.models import MobileOne
        >>> describe({f'backbone.{k}': v for k, v in MobileOne('s0').state_dict().items()})
        'a MobileOne-S0 (unfused) backbone'
        >>> describe({'conv1.weight': (64, 3, 7, 7), 'fc.weight': (10, 512)})
        'no MobileOne weights (modules conv1, fc)'
    """
    found = variant(shapes)
    if found is None:
        return (f'no MobileOne weights (modules '
                f'{", ".join(sorted({k.split(".")[0] for k in shapes}))})')
    arch, fused, complete = found
    return (f'a{"" if complete else "n incomplete"} {name(arch, fused)} '
            f'{task(shapes)}')


def fused_config(config: str) -> str:
    """The config that builds the fused network of ``config``."""
    deploy = re.sub(r'\.py$', '_deploy.py', config)
    if deploy != config and osp.isfile(deploy):
        return deploy
    return (f'the *_deploy config, or {config} with --cfg-options '
            f'model.backbone.deploy=True')


def variant_fix(file_arch: str, model_arch: str) -> Optional[str]:
    """The fix for a file of another MobileOne variant; ``None`` for the
    same variant."""
    if file_arch == model_arch:
        return None
    return (f"use a MobileOne-{file_arch.upper()} config for it "
            f"(model.backbone.arch='{file_arch}', with its widths in the "
            f"neck/head), or a MobileOne-{model_arch.upper()} file")


def unfused_config(config: str) -> str:
    """The train-time config of a ``*_deploy.py`` config.

    Example:
        >>> unfused_config('configs/classification/mobileone_s0_in1k_deploy.py')
        'configs/classification/mobileone_s0_in1k.py'
        >>> unfused_config('my.py')
        'my.py with model.backbone.deploy=False'
    """
    if config.endswith('_deploy.py'):
        return config[:-len('_deploy.py')] + '.py'
    return f'{config} with model.backbone.deploy=False'


def structure_fix(file_fused: bool, model_fused: bool, config: str,
                  arch: str = 'ARCH') -> Optional[str]:
    """The fix for a fused file in a train-time model or the other way
    round; ``None`` when both have the same form."""
    if file_fused and not model_fused:
        return (f'a fused (re-parameterized) file is for inference: build '
                f'the fused network ({fused_config(config)}); to train, use '
                f'the unfused file (Apple: mobileone_{arch}_unfused.pth.tar)')
    if model_fused and not file_fused:
        return (f'use {unfused_config(config)} (tools/test.py --deploy '
                f'evaluates it fused), or fuse the file first with '
                f'tools/reparameterize.py')
    return None


def fix(model: Mapping, file: Mapping, config: str) -> str:
    """The likely fix of a mismatch between ``file`` and ``model``."""
    found, want = variant(file), variant(model)
    structure = structure_fix(is_fused(file), is_fused(model), config,
                              found[0] if found else 'ARCH')
    if structure:
        return structure
    if task(file) != task(model) or found is None:
        return ('use the config the file was trained with; to start from its '
                'MobileOne backbone, name it in model.backbone.init_cfg (type '
                'Pretrained, prefix \'backbone.\')')
    other = want and variant_fix(found[0], want[0])
    if other:
        return other
    return ('use the config it was trained with (another head or number of '
            'classes?)')


def non_finite(state: Mapping) -> List[str]:
    """The keys of ``state`` whose floating-point tensors hold a NaN or an
    infinity (the weights of a diverged run).

    Example:
        >>> import torch
        >>> non_finite({'a': torch.ones(2), 'b': torch.tensor([float('inf')]), 'n': torch.tensor(3)})
        ['b']
    """
    return [k for k, v in state.items() if isinstance(v, Tensor)
            and v.is_floating_point() and not bool(v.isfinite().all())]


def check_values(file: Mapping, path: str, model: Optional[Mapping] = None
                 ) -> None:
    """Stop on weights no model should load: NaN or infinite values (a
    diverged run), or, against ``model``'s tensors, an integer, boolean or
    complex tensor where the model has a floating-point one.

    Raises:
        UserError: one line naming the file, how many weights and the first.

    Example:
        >>> import torch
        >>> check_values({'w': torch.tensor([1., float('nan')])}, 'x.pth')
        Traceback (most recent call last):
        ...
        mobileone_mm.utils.errors.UserError: x.pth: 1 weight is not finite (NaN or infinite; first: w): the file comes from a diverged run; use an earlier checkpoint
    """
    bad = non_finite(file)
    if bad:
        raise UserError(
            f'{path}: {len(bad)} weight{"s are" if len(bad) > 1 else " is"} '
            f'not finite (NaN or infinite; first: {bad[0]}): the file comes '
            f'from a diverged run; use an earlier checkpoint')
    if model is None:
        return
    kinds = [k for k, v in model.items() if isinstance(v, Tensor)
             and v.is_floating_point() and isinstance(file.get(k), Tensor)
             and not file[k].is_floating_point()]
    if kinds:
        raise UserError(
            f'{path}: {len(kinds)} weights have a non-floating dtype where the '
            f'model has floating-point ones (first: {kinds[0]}, '
            f'{file[kinds[0]].dtype} in the file, {model[kinds[0]].dtype} in '
            f'the model): it is no checkpoint of this model; use another file')


def fit_error(path: str, what: str, model: Mapping, file: Mapping,
              config: str, mismatch=None, advice: str = '') -> str:
    """The one-line message: which keys differ, the file's variant/form/task,
    the config's, the fix (and ``advice`` after it)."""
    missing, unexpected, wrong = mismatch or state_dict_mismatch(model, file)
    return (f'{path} does not fit {what}: '
            f'{mismatch_summary(missing, unexpected, wrong, model, file)}. '
            f'The file holds {describe(file)}; the config builds '
            f'{describe(model)}. Fix: {fix(model, file, config)}{advice}')


def check_fit(model: Mapping, file: Mapping, path: str, config: str,
              partial: bool = False, resume: bool = False,
              advice: Optional[str] = None) -> List[str]:
    """Stop unless the weights ``file`` (key -> tensor or shape) load
    strictly into ``model`` (the model's state dict, or its shapes); with
    ``partial``, warn about what will not load instead. Values that no model
    should load stop in every case (:func:`check_values`).

    Args:
        advice: what to add after the fix (default: the ``--partial-load``
            or ``--resume`` alternatives of tools/train.py and test.py).

    Returns:
        The model's weights that the file leaves as initialised.

    Raises:
        UserError: one line (:func:`fit_error`).
    """
    check_values(file, path, model)
    missing, unexpected, wrong = state_dict_mismatch(model, file)
    if not (missing or unexpected or wrong):
        return []
    if not partial:
        if advice is None:
            advice = ''  # a partial load makes no sense across fused/unfused
            if is_fused(model) == is_fused(file):
                advice = ('; or resume from a checkpoint of this config (or '
                          f'fine-tune from it: --cfg-options load_from={path} '
                          f'--partial-load)' if resume else '; or pass '
                          '--partial-load to load only the weights that fit '
                          '(e.g. fine-tuning with a new head)')
        raise UserError(fit_error(path, f'the model of {config}', model, file,
                                  config, (missing, unexpected, wrong),
                                  advice))
    skipped = missing + wrong
    unused = f': {few(unexpected)}' if unexpected else ''
    warn(f'--partial-load: {len(model) - len(skipped)} of {len(model)} model '
         f'weights loaded from {path}; {len(skipped)} not loaded (left as '
         f'initialised): {few(skipped)}; {len(unexpected)} checkpoint '
         f'weights not used{unused}')
    return skipped
