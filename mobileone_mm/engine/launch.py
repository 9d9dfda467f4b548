"""What tools/train.py and tools/test.py do, as functions (mmdet's tools,
generalised: the config's ``default_scope`` picks mmdet, mmseg or mmpretrain)."""
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mobileone_mm.apis import load_config
from mobileone_mm.utils.errors import UserError
from .cpu_dist import prepare_cpu_distributed
from .data_check import check_data


def add_common_args(parser) -> None:
    """Options tools/train.py and tools/test.py share (as mmdet's do)."""
    parser.add_argument('--work-dir', help='where to save logs, checkpoints '
                        'and evaluation results')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_tool_args(parser):
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


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


def add_fused_eval(cfg: Config, val: bool = True, test: bool = True) -> None:
    hooks = [h for h in cfg.get('custom_hooks', []) or []
             if 'FusedEvalHook' not in str(h.get('type'))]
    hooks.append(dict(type='mobileone_mm.FusedEvalHook', val=val, test=test))
    cfg.custom_hooks = hooks


def check_pretrained(cfg: Config) -> None:
    """The backbone's ImageNet checkpoint must exist before training starts."""
    from mobileone_mm.models.backbones.mobileone import (MobileOne,
                                                         missing_pretrained)
    backbone = cfg.get('model', {}).get('backbone') or {}
    arch = backbone.get('arch', 's0')
    if not isinstance(arch, str):  # a changed preset, e.g. S4 without SE
        widths = tuple(arch.get('widths', ()))
        arch = next((name for name, preset in MobileOne.arch_settings.items()
                     if tuple(preset['widths']) == widths), 's0')
    message = missing_pretrained(backbone.get('init_cfg'), arch)
    if message:
        raise UserError(message)


def build_runner(cfg: Config) -> Runner:
    prepare_cpu_distributed(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def train(config: str, work_dir: Optional[str] = None, resume=None,
          amp: bool = False, auto_scale_lr: bool = False,
          fused_val: bool = False, cfg_options: Optional[dict] = None,
          launcher: str = 'none') -> Runner:
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = _work_dir(cfg, config, work_dir)
    if amp:
        enable_amp(cfg)
    if auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise UserError('--auto-scale-lr needs auto_scale_lr.base_batch_size '
                            'in the config')
        cfg.auto_scale_lr.enable = True
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        if not osp.isfile(resume):
            raise UserError(f'checkpoint to resume from not found: {resume}')
        cfg.resume, cfg.load_from = True, resume
    if fused_val:
        add_fused_eval(cfg, val=True, test=True)
    check_data(cfg, loaders=('train_dataloader', 'val_dataloader')
               if cfg.get('val_cfg') else ('train_dataloader', ))
    if not cfg.get('resume'):
        check_pretrained(cfg)
    runner = build_runner(cfg)
    runner.train()
    return runner


def test(config: str, checkpoint: str, work_dir: Optional[str] = None,
         deploy: bool = False, out: Optional[str] = None,
         show_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
         launcher: str = 'none') -> dict:
    cfg = load_config(config, cfg_options)
    if not osp.isfile(checkpoint):
        raise UserError(f'checkpoint not found: {checkpoint}')
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
    check_data(cfg, loaders=('test_dataloader', ))
    runner = build_runner(cfg)
    os.makedirs(cfg.work_dir, exist_ok=True)
    return runner.test()
