"""Fail early, in one message, when a config's data set is not on disk."""
import os.path as osp
from typing import Iterator, List

# What each data set's files must look like under the working directory.
EXPECTED_LAYOUTS = {
    'CocoDataset': """data/coco/
  annotations/instances_train2017.json
  annotations/instances_val2017.json
  train2017/*.jpg
  val2017/*.jpg""",
    'PascalVOCDataset': """data/VOCdevkit/VOC2012/
  JPEGImages/*.jpg
  SegmentationClass/*.png
  SegmentationClassAug/*.png   (SBD augmented masks)
  ImageSets/Segmentation/{train,val,aug}.txt
_coco-voc configs also: data/coco/train2017/*.jpg and
  data/coco/voc_masks/train2017/*.png + voc_masks/train2017.txt
  (python tools/coco_to_voc_masks.py data/coco/annotations/instances_train2017.json data/coco/voc_masks/train2017)""",
    'ADE20KDataset': """data/ade/ADEChallengeData2016/
  images/{training,validation}/*.jpg
  annotations/{training,validation}/*.png""",
    'ImageNet': """data/imagenet/
  train/<class>/*.JPEG   (or train.txt + images)
  val/<class>/*.JPEG     (or meta/val.txt + images)""",
}


class MissingDataError(FileNotFoundError):
    """The data a config needs is missing; the message shows the layout."""


def _datasets(cfg) -> Iterator[dict]:
    """Leaf dataset configs inside wrappers (Concat/Repeat/ClassBalanced)."""
    stack = [cfg]
    while stack:
        ds = stack.pop()
        if ds is None:
            continue
        if isinstance(ds, (list, tuple)):
            stack.extend(ds)
        elif 'datasets' in ds:
            stack.extend(ds['datasets'])
        elif 'dataset' in ds:
            stack.append(ds['dataset'])
        else:
            yield ds


def _paths(ds: dict) -> List[str]:
    root = ds.get('data_root') or ''
    paths = []
    if ds.get('ann_file'):
        paths.append(osp.join(root, ds['ann_file']))
    # mmpretrain's ImageNet reads data_root/<split>/ when data_prefix is unset
    prefix = ds.get('data_prefix') or ds.get('split') or {}
    if isinstance(prefix, str):
        prefix = dict(img=prefix)
    for value in prefix.values():
        if isinstance(value, str) and value:
            paths.append(osp.join(root, value))
    if not paths and root:
        paths.append(root)
    return paths


def check_data(cfg, loaders=('train_dataloader', 'val_dataloader',
                             'test_dataloader')) -> None:
    """Raise :class:`MissingDataError` naming every missing path and the
    expected layout, instead of a stack trace from deep inside a dataset."""
    missing, types = [], []
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        for ds in _datasets(loader.get('dataset')):
            for path in _paths(ds):
                if not osp.exists(path) and path not in missing:
                    missing.append(path)
                    types.append(str(ds.get('type', '')).split('.')[-1])
    if not missing:
        return
    lines = [f'data set not found: {", ".join(missing[:4])}'
             + (' ...' if len(missing) > 4 else '') + ' (relative to '
             f'{osp.abspath(".")})']
    for t in dict.fromkeys(types):
        if t in EXPECTED_LAYOUTS:
            lines.append(f'expected layout for {t}:\n{EXPECTED_LAYOUTS[t]}')
    lines.append('Put the data there (or symlink it), or point the config at '
                 'it with --cfg-options, e.g. train_dataloader.dataset.'
                 'data_root=/path/to/data/')
    raise MissingDataError('\n'.join(lines))
