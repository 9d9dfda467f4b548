"""The README's `make demo-seg`: DeepLabV3-MobileOne-S0 on synthetic shapes,
on CPU.

generate data (VOC layout) -> train from scratch -> evaluate -> evaluate the
fused model (same mIoU) -> draw predictions with mmseg's inferencer ->
summary with the measured goal.
"""
import os
import os.path as osp
import shutil
import time
from typing import Dict, List

import torch

from .demo_common import print_timings, stage, train_and_evaluate

CONFIG = 'configs/segmentation/deeplabv3_mobileone_s0_shapes.py'
GOAL_MIOU = 0.6
GOAL_MINUTES = 10.0
IMAGE_SIZE = 96  # the config's crop size


def ensure_data(root: str, num_train: int, num_val: int, seed: int,
                size: int = IMAGE_SIZE) -> str:
    """Shapes data at ``root`` laid out as VOC; returns the VOC root."""
    from mobileone_mm.datasets import generate_shapes, write_voc_layout
    voc_root = osp.join(root, 'VOCdevkit', 'VOC2012')
    stamp = osp.join(root, f'.generated-seg-{num_train}-{num_val}-{seed}-{size}')
    if osp.exists(stamp):
        print(f'data set already in {root}')
        return voc_root
    shutil.rmtree(root, ignore_errors=True)
    # the shapes scale with the image: 28-56 px at 128 (the detection demo)
    generate_shapes(root, num_train=num_train, num_val=num_val, size=size,
                    min_size=round(28 * size / 128),
                    max_size=round(56 * size / 128), seed=seed)
    write_voc_layout(root, voc_root)
    open(stamp, 'w').close()
    print(f'wrote {num_train} train + {num_val} val images ({size} px) to '
          f'{voc_root}')
    return voc_root


def draw(config: str, checkpoint: str, images: List[str], masks: List[str],
         out_path: str) -> None:
    """mmseg's inferencer on the fused model: each image's drawn prediction
    next to its ground truth, four pairs per row."""
    import cv2
    import numpy as np
    from mmseg.apis import MMSegInferencer
    from PIL import Image

    from mobileone_mm import reparameterize
    inferencer = MMSegInferencer(model=config, weights=checkpoint,
                                 device='cpu')
    reparameterize(inferencer.model, inplace=True)
    tmp = out_path + '.parts'
    inferencer(images, out_dir=tmp, img_out_dir='vis', pred_out_dir='')
    palette = np.array(inferencer.model.dataset_meta['palette'], np.uint8)
    tiles = []
    for image, mask in zip(images, masks):
        drawn = cv2.imread(osp.join(tmp, 'vis', osp.basename(image)))
        truth = palette[np.array(Image.open(mask))][..., ::-1]  # RGB -> BGR
        tiles.append(np.concatenate([drawn, truth], axis=1))
    rows = [np.concatenate(tiles[i:i + 4], axis=1)
            for i in range(0, len(tiles), 4)]
    cv2.imwrite(out_path, np.concatenate(rows, axis=0))
    shutil.rmtree(tmp, ignore_errors=True)


def run(work_dir: str = 'work_dirs/demo_seg',
        data_root: str = 'data/shapes_seg', num_train: int = 800,
        num_val: int = 200, seed: int = 0) -> Dict:
    torch.manual_seed(seed)
    start = time.time()
    timings = {}

    stage(f'1/5 synthetic shapes data set in the VOC layout ({data_root})')
    t = time.time()
    voc_root = ensure_data(data_root, num_train, num_val, seed)
    timings['data'] = time.time() - t
    options = {f'{loader}.dataset.data_root': voc_root + '/'
               for loader in ('train_dataloader', 'val_dataloader',
                              'test_dataloader')}
    options['randomness.seed'] = seed

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
    total = time.time() - start

    # mmseg's IoUMetric reports percentages
    miou_unfused = unfused['mIoU'] / 100
    miou_fused = fused['mIoU'] / 100
    summary = dict(miou_unfused=miou_unfused, miou_fused=miou_fused,
                   minutes=total / 60, checkpoint=checkpoint, picture=picture,
                   timings=timings)
    print_timings(timings)
    same = 'same' if miou_unfused == miou_fused else 'DIFFERENT'
    print(f'mIoU (held-out {num_val} images, 4 classes incl. background): '
          f'unfused {miou_unfused:.4f}, fused {miou_fused:.4f} ({same})')
    met = miou_fused >= GOAL_MIOU and total / 60 <= GOAL_MINUTES
    print(f'total {total / 60:.1f} min; goal mIoU >= {GOAL_MIOU} in <= '
          f'{GOAL_MINUTES:.0f} min: {"met" if met else "NOT met"}')
    print(f'checkpoint: {checkpoint}\npredictions: {picture}')
    return summary
