"""`make demo-seg`: DeepLabV3-MobileOne-S0 on synthetic shapes,
on CPU.

generate data (VOC layout) -> train from scratch -> evaluate -> evaluate the
fused model (same mIoU) -> draw predictions with mmseg's inferencer ->
summary with the measured goal, also written to ``WORK_DIR/summary.json``.
"""
import os
import os.path as osp
import tempfile
import time
from typing import Dict, List

import cv2
import numpy as np
import torch
from PIL import Image

from mobileone_mm.datasets import generate_shapes, write_voc_layout
from mobileone_mm.datasets.shapes import shape_size_range
from mobileone_mm.deploy import reparameterize
from mobileone_mm.utils.paths import config_path
from .common import (UNFUSED_FORM, data_options, make_data, prepare_folders,
                     print_timings, save_grid, stage, train_and_evaluate,
                     write_summary, yardstick_ms)

CONFIG = config_path('segmentation/deeplabv3_mobileone_s0_shapes.py')
GOAL_MIOU = 0.8
GOAL_MINUTES = 10.0
IMAGE_SIZE = 96  # the config's crop size


def ensure_data(root: str, num_train: int, num_val: int, seed: int,
                size: int = IMAGE_SIZE) -> str:
    """Shapes data at ``root`` laid out as VOC, generated unless a demo run
    already wrote the same one there; returns the VOC root."""
    voc_root = osp.join(root, 'VOCdevkit', 'VOC2012')
    min_size, max_size = shape_size_range(size)

    def generate() -> None:
        generate_shapes(root, num_train=num_train, num_val=num_val, size=size,
                        min_size=min_size, max_size=max_size, seed=seed)
        write_voc_layout(root, voc_root)

    make_data(root, f'shapes in the VOC layout: {num_train} train + '
              f'{num_val} val images of {size} px, seed {seed}', generate)
    return voc_root


def draw(config: str, checkpoint: str, images: List[str], masks: List[str],
         out_path: str) -> None:
    """mmseg's inferencer on the fused model: each image's drawn prediction
    next to its ground truth, four pairs per row."""
    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(model=config, weights=checkpoint,
                                 device='cpu')
    reparameterize(inferencer.model, inplace=True)
    palette = np.array(inferencer.model.dataset_meta['palette'], np.uint8)
    with tempfile.TemporaryDirectory(dir=osp.dirname(out_path)) as tmp:
        inferencer(images, out_dir=tmp, img_out_dir='vis', pred_out_dir='')
        tiles = []
        for image, mask in zip(images, masks):
            drawn = cv2.imread(osp.join(tmp, 'vis', osp.basename(image)))
            truth = palette[np.array(Image.open(mask))][..., ::-1]  # RGB->BGR
            tiles.append(np.concatenate([drawn, truth], axis=1))
    save_grid(tiles, out_path)


def _print_summary(summary: Dict, num_val: int) -> None:
    print_timings(summary['timings'], summary['yardstick_fused_s0_ms'])
    unfused, fused = summary['miou_unfused'], summary['miou_fused']
    minutes = summary['minutes']
    same = 'same' if unfused == fused else 'DIFFERENT'
    print(f'mIoU (held-out {num_val} images, 4 classes incl. background): '
          f'unfused {unfused:.4f} ({summary["unfused_form"]}), fused '
          f'{fused:.4f} ({same})')
    print(f'total {minutes:.1f} min; goal mIoU >= {GOAL_MIOU} in <= '
          f'{GOAL_MINUTES:.0f} min: '
          f'{"met" if summary["goal_met"] else "NOT met"}')
    print(f'checkpoint: {summary["checkpoint"]}\n'
          f'predictions: {summary["picture"]}\n'
          f'summary: {summary["summary_json"]}')


def run(work_dir: str = 'work_dirs/demo_seg',
        data_root: str = 'data/shapes_seg', num_train: int = 800,
        num_val: int = 200, seed: int = 0) -> Dict:
    """The whole demo; raises :class:`UserError` before writing anything
    when ``work_dir`` or ``data_root`` is not the demos' to write."""
    prepare_folders(work_dir, data_root)
    torch.manual_seed(seed)
    start = time.time()
    timings: Dict[str, float] = {}

    stage(f'1/5 synthetic shapes data set in the VOC layout ({data_root})')
    t = time.time()
    voc_root = ensure_data(data_root, num_train, num_val, seed)
    timings['data'] = time.time() - t
    options = data_options(voc_root, seed)

    checkpoint, unfused, fused = train_and_evaluate(
        CONFIG, 'DeepLabV3-MobileOne-S0', work_dir, options, timings, 2, 5)

    stage('5/5 draw predictions of the fused model (mmseg MMSegInferencer)')
    t = time.time()
    picture = osp.join(work_dir, 'predictions.jpg')
    names = sorted(os.listdir(osp.join(voc_root, 'SegmentationClass')))
    val = [n for n in names if n.startswith('val_')][:8]
    draw(CONFIG, checkpoint,
         [osp.join(voc_root, 'JPEGImages', n[:-4] + '.jpg') for n in val],
         [osp.join(voc_root, 'SegmentationClass', n) for n in val], picture)
    timings['draw'] = time.time() - t

    minutes = (time.time() - start) / 60
    # mmseg's IoUMetric reports percentages
    miou = dict(pytorch=unfused['mIoU'] / 100, fused=fused['mIoU'] / 100)
    summary = dict(mIoU=miou, unfused_form=UNFUSED_FORM, minutes=minutes,
                   yardstick_fused_s0_ms=yardstick_ms(),
                   goal=dict(mIoU=GOAL_MIOU, minutes=GOAL_MINUTES),
                   goal_met=bool(miou['fused'] >= GOAL_MIOU
                                 and minutes <= GOAL_MINUTES))
    summary_path = write_summary(summary, work_dir)
    summary.update(miou_unfused=miou['pytorch'], miou_fused=miou['fused'],
                   checkpoint=checkpoint, picture=picture, timings=timings,
                   summary_json=summary_path)
    _print_summary(summary, num_val)
    return summary
