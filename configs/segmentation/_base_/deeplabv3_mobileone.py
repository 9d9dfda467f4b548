# DeepLabV3 with a MobileOne backbone: model, schedule and runtime shared by
# the VOC and ADE20K bases (paper Sec. 4 "Semantic Segmentation on Pascal VOC
# and ADE 20k" and supp. E.1, which follow MobileViT's DeepLabV3 recipe).
# Data bases: deeplabv3_mobileone_voc.py, deeplabv3_mobileone_ade20k.py.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mobileone_mm'], allow_failed_imports=False)
default_scope = 'mmseg'

# 8 GPUs x 4 images: SyncBN, as mmseg's 512x512 DeepLabV3 configs.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mobileone_mm.MobileOne',
        arch='s0',
        # Output stride 8 (DeepLabV3 / MobileViT recipe): stages 3 and 4 keep
        # stride 1 and dilate their 3x3 depthwise convs by 2 and 4.
        strides=(2, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        out_indices=(2, 3),  # stage 3 -> auxiliary head, stage 4 -> ASPP
        norm_cfg=norm_cfg,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobileone_s0_in1k.pth',
            prefix='backbone.')),
    decode_head=dict(
        type='ASPPHead',
        in_channels=1024,  # MobileOne-S0 stage 4
        in_index=1,
        # ASPP width 256 as in DeepLabV3 (Chen et al. 2017, Sec. 3.3)
        channels=256,
        dilations=(1, 12, 24, 36),  # ASPP rates at output stride 8
        dropout_ratio=0.1,
        num_classes=21,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=256,  # MobileOne-S0 stage 3
        in_index=0,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=21,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# ---- data: the paper's 512x512 recipe for VOC and ADE20K (Sec. 4, following
# MobileViT; supp. E.1: "the same hyperparameters and augmentations" for both,
# the only augmentations random resize, random crop and horizontal flip, i.e.
# mmseg's pipelines without PhotoMetricDistortion). LoadAnnotations takes
# reduce_zero_label from the dataset (ADE20K: True, VOC: False), as mmseg
# recommends. mmseg's dataset bases define crop_size and train_pipeline
# themselves (and mmengine allows no key in two bases), so the data files
# take these under their own names: train_pipeline = {{_base_.paper_train_pipeline}}.
paper_crop_size = (512, 512)
paper_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=paper_crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
# Total batch 32 = 8 GPUs x 4 images (mmseg's 512x512 setting; the paper
# does not state its batch).
auto_scale_lr = dict(enable=False, base_batch_size=32)

# ---- schedule (supp. E.1)
max_epochs = 50  # supp. E.1: 50 epochs (VOC and ADE20K)
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    # supp. E.1: AdamW, maximum lr 1e-4, weight decay 0.01
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.01),
    # supp. E.1: lr multiplier 10 on the segmentation head. The auxiliary
    # head (discarded at inference) starts from scratch too and gets the same.
    paramwise_cfg=dict(custom_keys={
        'decode_head': dict(lr_mult=10.),
        'auxiliary_head': dict(lr_mult=10.)
    }))
param_scheduler = [
    # supp. E.1: 500 linear warm-up iterations (from lr 1e-6 = 0.01 x 1e-4)
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=500),
    # supp. E.1: cosine from 1e-4 down to 1e-6 over the 50 epochs
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-6,
         by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True)
]
# supp. E.1: EMA of the weights with momentum 5e-4 (mmengine's EMAHook:
# ema = (1 - momentum) * ema + momentum * weights after every iteration).
custom_hooks = [dict(type='EMAHook', momentum=5e-4)]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=True),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=5,
                    max_keep_ckpts=3, save_best='mIoU', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=True)
