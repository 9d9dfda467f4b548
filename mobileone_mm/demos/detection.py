"""The README's `make demo`: SSDLite-MobileOne-S0 on synthetic shapes, on CPU.

generate data -> train from scratch -> evaluate -> fuse -> evaluate again
(same mAP) -> draw predictions -> export the fused detector (ONNX and Core ML,
checked) -> summary with the measured goal.
"""
import os
import os.path as osp
import tempfile
import time
from typing import Dict, List

import cv2
import torch

from mobileone_mm.datasets import generate_shapes
from mobileone_mm.deploy import deploy, format_report, reparameterize
from mobileone_mm.utils.paths import config_path
from .common import (data_options, make_data, prepare_folders,
                     print_timings, save_grid, stage, train_and_evaluate)

CONFIG = config_path('detection/ssdlite_mobileone_s0_shapes.py')
GOAL_MAP = 0.5
GOAL_MINUTES = 10.0


def ensure_data(root: str, num_train: int, num_val: int, seed: int) -> None:
    """The shapes data set (COCO files) at ``root``, generated unless a
    demo run already wrote the same one there."""
    make_data(root, f'shapes: {num_train} train + {num_val} val images, '
              f'seed {seed}',
              lambda: generate_shapes(root, num_train=num_train,
                                      num_val=num_val, seed=seed))


def coco_options(data_root: str, seed: int) -> Dict[str, object]:
    """``--cfg-options`` that point the demo config's loaders and COCO
    evaluators at ``data_root``."""
    ann_file = f'{data_root}/annotations/instances_val.json'
    options = data_options(data_root, seed)
    options.update({'val_evaluator.ann_file': ann_file,
                    'test_evaluator.ann_file': ann_file})
    return options


def draw(config: str, checkpoint: str, images: List[str],
         out_path: str) -> None:
    """mmdet's inferencer on the fused model, four drawn images a row."""
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=config, weights=checkpoint, device='cpu',
                               show_progress=False)
    reparameterize(inferencer.model, inplace=True)
    with tempfile.TemporaryDirectory(dir=osp.dirname(out_path)) as tmp:
        inferencer(images, out_dir=tmp, pred_score_thr=0.3, no_save_pred=True)
        save_grid([cv2.imread(osp.join(tmp, 'vis', osp.basename(p)))
                   for p in images], out_path)


def _print_summary(summary: Dict, num_val: int, export_dir: str) -> None:
    print_timings(summary['timings'])
    unfused, fused = summary['map_unfused'], summary['map_fused']
    minutes = summary['minutes']
    print(f'bbox mAP (held-out {num_val} images): unfused {unfused:.3f}, '
          f'fused {fused:.3f} ({"same" if unfused == fused else "DIFFERENT"})')
    met = fused >= GOAL_MAP and minutes <= GOAL_MINUTES
    print(f'total {minutes:.1f} min; goal mAP >= {GOAL_MAP} in <= '
          f'{GOAL_MINUTES:.0f} min: {"met" if met else "NOT met"}')
    print(f'checkpoint: {summary["checkpoint"]}\n'
          f'predictions: {summary["picture"]}\n'
          f'export: {export_dir}/ (backbone.onnx, backbone.mlpackage, '
          f'model.onnx, model.mlpackage, report.json)')


def run(work_dir: str = 'work_dirs/demo', data_root: str = 'data/shapes',
        num_train: int = 800, num_val: int = 200, seed: int = 0,
        export_runs: int = 20) -> Dict:
    """The whole demo; raises :class:`UserError` before writing anything
    when ``work_dir`` or ``data_root`` is not the demos' to write."""
    prepare_folders(work_dir, data_root)
    torch.manual_seed(seed)
    start = time.time()
    timings: Dict[str, float] = {}
    options = coco_options(data_root, seed)

    stage(f'1/6 synthetic shapes data set ({data_root})')
    t = time.time()
    ensure_data(data_root, num_train, num_val, seed)
    timings['data'] = time.time() - t

    checkpoint, unfused, fused = train_and_evaluate(
        CONFIG, 'SSDLite-MobileOne-S0', work_dir, options, timings, 2, 6)

    stage('5/6 draw predictions of the fused model')
    picture = osp.join(work_dir, 'predictions.jpg')
    val_dir = osp.join(data_root, 'val')
    images = sorted(os.listdir(val_dir))[:8]
    draw(CONFIG, checkpoint, [osp.join(val_dir, i) for i in images], picture)

    stage('6/6 export the fused detector to ONNX and Core ML (tools/deploy.py)')
    t = time.time()
    export_dir = osp.join(work_dir, 'export')
    report = deploy(CONFIG, checkpoint, work_dir=export_dir, runs=export_runs,
                    full_model=True, cfg_options=options, verbose=False)
    print(format_report(report))
    timings['export'] = time.time() - t

    summary = dict(map_unfused=unfused['coco/bbox_mAP'],
                   map_fused=fused['coco/bbox_mAP'],
                   minutes=(time.time() - start) / 60, checkpoint=checkpoint,
                   picture=picture, report=osp.join(export_dir, 'report.json'),
                   timings=timings)
    _print_summary(summary, num_val, export_dir)
    return summary
