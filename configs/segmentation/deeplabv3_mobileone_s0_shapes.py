# The README's `make demo-seg`: DeepLabV3 + MobileOne-S0 trained from scratch
# on the synthetic shapes data set in the VOC layout, on a 2-core CPU. Only
# data, schedule and what a 2-core CPU needs differ from
# deeplabv3_mobileone_s0_voc.py (the paper's VOC recipe). Data:
#   python tools/make_shapes_seg_dataset.py data/shapes_seg
_base_ = ['./deeplabv3_mobileone_s0_voc.py']

# ---- data: 96x96 images with 1-8 shapes of 21-42 px (the detection demo's
# 128 px data scaled by 3/4: output stride 8 costs ~3x the MACs of stride 32);
# exact masks, 0 = background
data_root = 'data/shapes_seg/VOCdevkit/VOC2012/'
metainfo = dict(
    classes=('background', 'square', 'circle', 'triangle'),
    palette=[[0, 0, 0], [220, 20, 60], [0, 128, 255], [60, 180, 75]])
crop_size = (96, 96)  # CPU: the images' own size instead of 512
# CPU, one process: plain BN (SyncBN is for the 8-GPU recipe)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        init_cfg=None,  # from scratch: a demo has no ImageNet weights
        norm_cfg=norm_cfg,
        # from scratch, a plain 43-layer BN net barely moves in minutes;
        # gamma 0.1 on the branches of identity blocks starts it near its
        # identity paths (README, "The backbone"): mIoU 0.18 -> 0.52 at lr 1e-3
        branch_gamma=0.1),
    # CPU: ASPP and FCN at 64 channels instead of 256 (the ASPP's dilated
    # 3x3 convs on 1024 input channels are most of the model's MACs)
    decode_head=dict(num_classes=4, channels=64, norm_cfg=norm_cfg),
    auxiliary_head=dict(num_classes=4, channels=64, norm_cfg=norm_cfg))

# the paper's augmentation (random resize, crop, flip) at 96 px
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(96, 96), ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
# mmseg's BaseSegDataset: PascalVOCDataset accepts only subsets of the 21
# VOC classes.
shapes_dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.jpg',
    seg_map_suffix='.png',
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'))
train_dataloader = dict(
    batch_size=4,  # CPU: more, smaller steps learn faster per second
    num_workers=1,  # 2 cores: one loads data, the model gets the rest
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        ann_file='ImageSets/Segmentation/train.txt',
        pipeline=train_pipeline,
        **shapes_dataset))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline,
        **shapes_dataset))
test_dataloader = val_dataloader

# ---- schedule: minutes on a CPU instead of 50 epochs on 8 GPUs
max_epochs = 5  # 200 iterations each (800 images, batch 4): 1,000 in all
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
# From scratch: 30x the paper's lr (mIoU 0.74 at 3e-3, 0.52 at 1e-3), and no
# 10x head multiplier (it exists because a fresh head sits on a pretrained
# backbone; here both are fresh).
optim_wrapper = dict(
    optimizer=dict(lr=3e-3), paramwise_cfg=dict(_delete_=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-6,
         by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True)
]
# No EMA: momentum 5e-4 averages over ~2000 iterations, longer than this
# whole run, so the averaged weights would be barely trained.
custom_hooks = []
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1, save_best=None))
env_cfg = dict(cudnn_benchmark=False)
