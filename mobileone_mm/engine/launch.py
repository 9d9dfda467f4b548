"""What tools/train.py and tools/test.py do, as functions (mmdet's tools,
generalised: the config's ``default_scope`` picks mmdet, mmseg or mmpretrain)."""
import contextlib
import os
import os.path as osp
import re
import sys
from typing import Iterator, Optional

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mobileone_mm.apis import build_model, load_config
from mobileone_mm.checkpoint.fit import check_fit, runner_state, unfused_config
from mobileone_mm.checkpoint.loaders import is_url
from mobileone_mm.models import MobileOne
from mobileone_mm.models.backbones.mobileone import missing_pretrained
from mobileone_mm.utils.errors import UserError, note, warn
from .checkpoints import find_resume_checkpoint, read_checkpoint
from .cpu_dist import prepare_cpu_distributed
from .data_check import MissingDataError, check_data


def add_output_args(parser, work_dir_help: str = 'where to save logs, '
                    'checkpoints and evaluation results',
                    work_dir_required: bool = False) -> None:
    """``--work-dir`` and ``--cfg-options``, as every tool spells them."""
    parser.add_argument('--work-dir', required=work_dir_required,
                        help=work_dir_help)
    add_cfg_options(parser)


def add_cfg_options(parser) -> None:
    """``--cfg-options``, for the tools that write nothing (no
    ``--work-dir``)."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')


def add_common_args(parser) -> None:
    """Options tools/train.py and tools/test.py share (as mmdet's do)."""
    add_output_args(parser)
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_tool_args(parser):
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def run_tool(func, *args, **kwargs) -> None:
    """``func(*args, **kwargs)`` for a tool: bad input exits non-zero with
    one ``error: ...`` message that names the fix, no traceback."""
    try:
        func(*args, **kwargs)
    except (UserError, MissingDataError) as err:
        sys.exit(f'error: {err}')


def _work_dir(cfg: Config, config: str, work_dir: Optional[str]) -> str:
    if work_dir is not None:
        return work_dir
    if cfg.get('work_dir') is not None:
        return cfg.work_dir
    return osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])


def enable_amp(cfg: Config) -> None:
    from mmengine.device import get_device
    if get_device() == 'cpu':
        raise UserError('--amp needs a GPU (or NPU/MLU/MUSA): mmengine\'s '
                        'AmpOptimWrapper does not run on CPU; train without --amp')
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        return
    if wrapper != 'OptimWrapper':
        raise UserError(f'--amp needs optim_wrapper.type OptimWrapper, the '
                        f'config has {wrapper}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def add_finite_loss_check(cfg: Config) -> None:
    """Stop at the first non-finite loss (:class:`FiniteLossHook`)."""
    hooks = [h for h in cfg.get('custom_hooks', []) or []
             if 'FiniteLossHook' not in str(h.get('type'))]
    hooks.append(dict(type='mobileone_mm.FiniteLossHook'))
    cfg.custom_hooks = hooks


# mmcv's LoadImageFromFile (used by mmdet, mmseg and mmpretrain) on a file
# it cannot decode
_UNREADABLE_IMAGE = re.compile(r'failed to load image: (\S+)')


@contextlib.contextmanager
def readable_images() -> Iterator[None]:
    """Turn mmcv's ``failed to load image: PATH`` (an AssertionError deep
    in a data pipeline, or in a data loader worker) into one line naming
    the file and the fix."""
    try:
        yield
    except Exception as err:  # noqa: B902  (re-raised unless it is that one)
        found = _UNREADABLE_IMAGE.search(str(err))
        if found is None:
            raise
        raise UserError(
            f'{found[1]}: cannot read this image (truncated, corrupt or not '
            f'an image); replace the file, or remove it and its entry from '
            f'the data set\'s annotations') from None


def add_fused_eval(cfg: Config, val: bool = True, test: bool = True) -> None:
    hooks = [h for h in cfg.get('custom_hooks', []) or []
             if 'FusedEvalHook' not in str(h.get('type'))]
    hooks.append(dict(type='mobileone_mm.FusedEvalHook', val=val, test=test))
    cfg.custom_hooks = hooks


def check_pretrained(cfg: Config) -> None:
    """The backbone's ImageNet checkpoint must exist before training starts;
    the message says how to make it."""
    backbone = cfg.get('model', {}).get('backbone') or {}
    path = missing_pretrained(backbone.get('init_cfg'))
    if path is None:
        return
    arch = backbone.get('arch', 's0')
    arch = arch if isinstance(arch, str) else 'ARCH'
    raise UserError(
        f'MobileOne ImageNet checkpoint not found: {path}. Make it with one '
        f'of: (1) convert Apple\'s released file: python '
        f'tools/convert_checkpoint.py mobileone_{arch}_unfused.pth.tar {path}; '
        f'(2) train configs/classification/mobileone_{arch}_in1k.py with '
        f'tools/train.py and copy its checkpoint there; (3) train from '
        f'scratch: --cfg-options model.backbone.init_cfg=None')


def build_runner(cfg: Config) -> Runner:
    prepare_cpu_distributed(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def use_atomic_checkpoints(cfg: Config) -> None:
    """Make the config's ``CheckpointHook`` (mmengine's default one if the
    config names none) an ``AtomicCheckpointHook`` with the same options;
    a hook of another type or ``None`` (no checkpoints) is left alone."""
    hooks = dict(cfg.get('default_hooks') or {})
    hook = hooks.get('checkpoint', dict(type='CheckpointHook', interval=1))
    if isinstance(hook, dict) and hook.get('type') in (
            'CheckpointHook', 'mmengine.CheckpointHook'):
        hooks['checkpoint'] = dict(hook, type='mobileone_mm.AtomicCheckpointHook')
        cfg.default_hooks = hooks


def _mobileone_cfgs(node) -> Iterator[dict]:
    """The MobileOne configs inside a model config."""
    if isinstance(node, dict):
        kind = node.get('type')
        name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
        if name.split('.')[-1] == 'MobileOne':
            yield node
        node = list(node.values())
    if isinstance(node, (list, tuple)):
        for value in node:
            yield from _mobileone_cfgs(value)


def _fused_training(config: str) -> str:
    return (f'{config} builds a fused MobileOne (deploy=True): fused networks '
            f'have no BN and are for inference; train {unfused_config(config)} '
            f'and fuse afterwards with tools/reparameterize.py (--allow-fused '
            f'fine-tunes the fused network anyway)')


def check_backbones(cfg: Config, config: str, training: bool = False) -> None:
    """Stop on an unknown MobileOne arch and, when ``training``, on a fused
    (``deploy=True``) MobileOne, before any data or model is built."""
    for backbone in _mobileone_cfgs(cfg.get('model')):
        arch = backbone.get('arch', 's0')
        if isinstance(arch, str):
            MobileOne.parse_arch(arch)  # an unknown name stops here
        if training and backbone.get('deploy'):
            raise UserError(_fused_training(config))


def _weights_of(path: str, missing: str, before: str,
                resume: bool = False) -> dict:
    """The weights the runner will load from ``path`` (a file or URL, read
    as data; with ``resume`` it must hold the training state too). A file
    that does not exist stops with ``missing: path``; a URL is downloaded
    and says so in one ``note:`` line (checked ``before`` what)."""
    if not is_url(path) and not osp.isfile(path):
        raise UserError(f'{missing}: {path}')
    state = runner_state(read_checkpoint(path, resume=resume), path)
    if is_url(path):
        note(f'{path}: downloaded (torch.hub cache, read as data) and checked '
             f'against the model before {before}')
    return state


def _weights_to_train_from(cfg: Config, resume: Optional[str],
                           partial_load: bool) -> Optional[dict]:
    """Point the config at the checkpoint to resume or fine-tune from and
    return its weights (``None``: nothing to load). ``--resume`` without a
    path takes the newest checkpoint in the work dir that loads; in a work
    dir without checkpoints training starts as without it. A URL (for
    ``load_from`` or ``--resume``) is downloaded and checked like a file."""
    if resume is None and cfg.get('resume'):  # the config's own resume
        resume = cfg.get('load_from') or 'auto'
    if resume is not None and partial_load:
        raise UserError('--partial-load is for fine-tuning (load_from); '
                        '--resume needs a checkpoint of the same model: drop '
                        'one of them')
    cfg.resume = False
    if resume == 'auto':
        found = find_resume_checkpoint(cfg.work_dir)
        if found is not None:
            cfg.resume, cfg.load_from = True, found[0]
            return runner_state(found[1], found[0])
        warn(f'--resume: no checkpoint in {cfg.work_dir} yet; training '
             f'starts from the beginning')
    elif resume is not None:
        state = _weights_of(resume, 'checkpoint to resume from not found',
                            'resuming', resume=True)
        cfg.resume, cfg.load_from = True, resume
        return state
    load_from = cfg.get('load_from')
    if not load_from:
        return None
    return _weights_of(load_from, 'load_from checkpoint not found',
                       'training')


def _fits(cfg: Config, config: str, state: Optional[dict], path: str,
          partial: bool = False, resume: bool = False,
          allow_fused: bool = True) -> None:
    """The config's model, built alone (no runner yet, so nothing is
    logged before a mismatch stops), must take ``state`` strictly and,
    unless ``allow_fused``, hold no fused MobileOne."""
    if state is None and allow_fused:
        return
    model = build_model(cfg)
    if not allow_fused and any(isinstance(m, MobileOne) and m.is_fused
                               for m in model.modules()):
        raise UserError(_fused_training(config))
    if state is not None:
        check_fit(model.state_dict(), state, path, config, partial=partial,
                  resume=resume)


def train(config: str, work_dir: Optional[str] = None, resume=None,
          amp: bool = False, auto_scale_lr: bool = False,
          fused_val: bool = False, cfg_options: Optional[dict] = None,
          launcher: str = 'none', partial_load: bool = False,
          allow_fused: bool = False) -> Runner:
    """Train ``config``; what loads is checked strictly (``partial_load``
    lets a checkpoint load partly, saying what did not), a fused MobileOne
    is refused unless ``allow_fused``, checkpoints are written atomically."""
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = _work_dir(cfg, config, work_dir)
    check_backbones(cfg, config, training=not allow_fused)
    if amp:
        enable_amp(cfg)
    if auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise UserError('--auto-scale-lr needs auto_scale_lr.base_batch_size '
                            'in the config')
        cfg.auto_scale_lr.enable = True
    state = _weights_to_train_from(cfg, resume, partial_load)
    if fused_val:
        add_fused_eval(cfg, val=True, test=True)
    use_atomic_checkpoints(cfg)
    add_finite_loss_check(cfg)
    check_data(cfg, loaders=('train_dataloader', 'val_dataloader')
               if cfg.get('val_cfg') else ('train_dataloader', ))
    if not cfg.get('resume'):
        check_pretrained(cfg)
    _fits(cfg, config, state, cfg.load_from, partial=partial_load,
          resume=cfg.resume, allow_fused=allow_fused)
    runner = build_runner(cfg)
    with readable_images():
        runner.train()
    return runner


def test(config: str, checkpoint: str, work_dir: Optional[str] = None,
         deploy: bool = False, out: Optional[str] = None,
         show_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
         launcher: str = 'none', partial_load: bool = False) -> dict:
    """Evaluate ``checkpoint``, which must fit the config's model (keys and
    shapes) unless ``partial_load``."""
    cfg = load_config(config, cfg_options)
    if not is_url(checkpoint) and not osp.isfile(checkpoint):
        raise UserError(f'checkpoint not found: {checkpoint}')
    check_backbones(cfg, config)
    cfg.launcher = launcher
    cfg.work_dir = _work_dir(cfg, config, work_dir)
    cfg.load_from = checkpoint
    if deploy:
        add_fused_eval(cfg, val=False, test=True)
    if show_dir is not None:
        vis = cfg.default_hooks.get('visualization')
        if vis is None:
            raise UserError('--show-dir needs a visualization hook in '
                            'default_hooks')
        vis.draw = True
        vis.test_out_dir = show_dir
        if 'interval' in vis:
            vis.interval = 1
    if out is not None:
        if not out.endswith(('.pkl', '.pickle')):
            raise UserError('--out must be a .pkl file')
        cfg.test_evaluator = list(cfg.test_evaluator) if isinstance(
            cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
        cfg.test_evaluator.append(dict(type='DumpResults', out_file_path=out))
    state = _weights_of(checkpoint, 'checkpoint not found', 'testing')
    check_data(cfg, loaders=('test_dataloader', ))
    _fits(cfg, config, state, checkpoint, partial=partial_load)
    runner = build_runner(cfg)
    os.makedirs(cfg.work_dir, exist_ok=True)
    with readable_images():
        return runner.test()
