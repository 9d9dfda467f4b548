"""The README's `make demo`: SSDLite-MobileOne-S0 on synthetic shapes, on CPU.

generate data -> train from scratch -> evaluate -> fuse -> evaluate again
(same mAP) -> draw predictions -> export the fused detector (ONNX and Core ML,
checked) -> summary with the measured goal.
"""
import os
import os.path as osp
import shutil
import time
from typing import Dict, List

import torch

from .demo_common import print_timings, stage, train_and_evaluate

CONFIG = 'configs/detection/ssdlite_mobileone_s0_shapes.py'
GOAL_MAP = 0.5
GOAL_MINUTES = 10.0


def _ensure_data(root: str, num_train: int, num_val: int, seed: int) -> None:
    from mobileone_mm.datasets import generate_shapes
    stamp = osp.join(root, f'.generated-{num_train}-{num_val}-{seed}')
    if osp.exists(stamp):
        print(f'data set already in {root}')
        return
    shutil.rmtree(root, ignore_errors=True)
    generate_shapes(root, num_train=num_train, num_val=num_val, seed=seed)
    open(stamp, 'w').close()
    print(f'wrote {num_train} train + {num_val} val images to {root}')


def _draw(config: str, checkpoint: str, images: List[str], out_path: str) -> None:
    import cv2
    import numpy as np
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=config, weights=checkpoint, device='cpu',
                               show_progress=False)
    tmp = out_path + '.parts'
    inferencer(images, out_dir=tmp, pred_score_thr=0.3, no_save_pred=True)
    drawn = [cv2.imread(osp.join(tmp, 'vis', osp.basename(p))) for p in images]
    rows = [np.concatenate(drawn[i:i + 4], axis=1)
            for i in range(0, len(drawn), 4)]
    cv2.imwrite(out_path, np.concatenate(rows, axis=0))
    shutil.rmtree(tmp, ignore_errors=True)


def run(work_dir: str = 'work_dirs/demo', data_root: str = 'data/shapes',
        num_train: int = 800, num_val: int = 200, seed: int = 0,
        export_runs: int = 20) -> Dict:
    torch.manual_seed(seed)
    start = time.time()
    timings = {}
    options = {
        'train_dataloader.dataset.data_root': data_root + '/',
        'val_dataloader.dataset.data_root': data_root + '/',
        'test_dataloader.dataset.data_root': data_root + '/',
        'val_evaluator.ann_file': f'{data_root}/annotations/instances_val.json',
        'test_evaluator.ann_file': f'{data_root}/annotations/instances_val.json',
        'randomness.seed': seed,
    }

    stage(f'1/6 synthetic shapes data set ({data_root})')
    t = time.time()
    _ensure_data(data_root, num_train, num_val, seed)
    timings['data'] = time.time() - t

    checkpoint, unfused, fused = train_and_evaluate(
        CONFIG, 'SSDLite-MobileOne-S0', work_dir, options, timings, 2, 6)

    stage('5/6 draw predictions of the fused model')
    picture = osp.join(work_dir, 'predictions.jpg')
    val_dir = osp.join(data_root, 'val')
    images = sorted(os.listdir(val_dir))[:8]
    _draw(CONFIG, checkpoint, [osp.join(val_dir, i) for i in images], picture)

    stage('6/6 export the fused detector to ONNX and Core ML (tools/deploy.py)')
    t = time.time()
    from mobileone_mm.deploy import deploy, format_report
    export_dir = osp.join(work_dir, 'export')
    report = deploy(CONFIG, checkpoint, work_dir=export_dir, runs=export_runs,
                    full_model=True, cfg_options=options, verbose=False)
    print(format_report(report))
    timings['export'] = time.time() - t
    total = time.time() - start

    map_unfused = unfused['coco/bbox_mAP']
    map_fused = fused['coco/bbox_mAP']
    summary = dict(map_unfused=map_unfused, map_fused=map_fused,
                   minutes=total / 60, checkpoint=checkpoint, picture=picture,
                   report=osp.join(export_dir, 'report.json'), timings=timings)
    print_timings(timings)
    print(f'bbox mAP (held-out {num_val} images): unfused {map_unfused:.3f}, '
          f'fused {map_fused:.3f} ({"same" if map_unfused == map_fused else "DIFFERENT"})')
    print(f'total {total / 60:.1f} min; goal mAP >= {GOAL_MAP} in <= '
          f'{GOAL_MINUTES:.0f} min: '
          f'{"met" if map_fused >= GOAL_MAP and total / 60 <= GOAL_MINUTES else "NOT met"}')
    print(f'checkpoint: {checkpoint}\npredictions: {picture}\n'
          f'export: {export_dir}/ (backbone.onnx, backbone.mlpackage, '
          f'model.onnx, model.mlpackage, report.json)')
    return summary
