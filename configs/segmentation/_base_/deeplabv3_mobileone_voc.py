# DeepLabV3-MobileOne on Pascal VOC 2012 + SBD ("VOC aug", paper Sec. 4 and
# supp. E.1): 21 classes, train on the 10,582 aug images, evaluate mIoU on the
# 1,449 val images. Variant files (deeplabv3_mobileone_s*_voc.py) set the arch,
# the head input channels and the ImageNet checkpoint.
_base_ = [
    './deeplabv3_mobileone.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
]
crop_size = {{_base_.paper_crop_size}}
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=21),
    auxiliary_head=dict(num_classes=21))
train_pipeline = {{_base_.paper_train_pipeline}}
# VOC aug = VOC 2012 train (SegmentationClass) + SBD (SegmentationClassAug),
# 10,582 images, as mmseg's pascal_voc12_aug.
dataset_train = dict(
    type='PascalVOCDataset',
    data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
    ann_file='ImageSets/Segmentation/train.txt',
    pipeline=train_pipeline)
dataset_aug = dict(
    type='PascalVOCDataset',
    data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(
        img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
    ann_file='ImageSets/Segmentation/aug.txt',
    pipeline=train_pipeline)
# COCO images with the 20 VOC classes as VOC masks, for the _coco-voc
# variants (supp. E.1: "trained on both MS-COCO and VOC data"). Make them with
#   python tools/coco_to_voc_masks.py data/coco/annotations/instances_train2017.json data/coco/voc_masks/train2017
dataset_coco_voc = dict(
    type='PascalVOCDataset',
    data_root='data/coco',
    data_prefix=dict(img_path='train2017', seg_map_path='voc_masks/train2017'),
    ann_file='voc_masks/train2017.txt',
    pipeline=train_pipeline)

# Total batch 32 (8 x 4): 10,582 / 32 = 331 iterations per epoch, 16,550 for
# the 50 epochs.
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[dataset_train, dataset_aug]))
# val: VOC 2012 val, 1,449 images, mIoU (mmseg's pascal_voc12_aug base)
