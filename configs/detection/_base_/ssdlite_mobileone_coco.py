# SSDLite with a MobileOne backbone on COCO at 320x320 (paper Sec. 4 "Object
# detection on MS-COCO" and supp. D.1). Variant files (ssdlite_mobileone_s*.py)
# set the arch, the channels and the ImageNet checkpoint.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mobileone_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

input_size = 320  # paper Sec. 4 / supp. D.1: 320x320 for training and evaluation
# Activation of the SSDLite neck and head: ReLU. MobileOne itself uses ReLU only
# (paper Sec. 3.2, Table 3: other activations cost latency on device); we keep
# the whole detector on the same cheap activation instead of MobileNetV2's ReLU6.
det_act_cfg = dict(type='ReLU')
det_norm_cfg = dict(type='BN', eps=0.001, momentum=0.03)  # mmdet's SSDLite

data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_size_divisor=1)
model = dict(
    type='SingleStageDetector',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mobileone_mm.MobileOne',
        arch='s0',
        out_indices=(2, 3),  # stage 3 (stride 16) and stage 4 (stride 32)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobileone_s0_in1k.pth',
            prefix='backbone.')),
    neck=dict(
        type='SSDNeck',  # SSDLite: depthwise-separable extra layers
        in_channels=(256, 1024),
        out_channels=(256, 1024, 512, 256, 256, 128),
        level_strides=(2, 2, 2, 2),  # extra levels at strides 64, 128, 256, last
        level_paddings=(1, 1, 1, 1),
        l2_norm_scale=None,
        use_depthwise=True,
        norm_cfg=det_norm_cfg,
        act_cfg=det_act_cfg,
        init_cfg=dict(type='TruncNormal', layer='Conv2d', std=0.03)),
    bbox_head=dict(
        # mmdet's SSDHead + the attribute mmdet 3.3.0's predict needs
        type='mobileone_mm.SSDLiteHead',
        in_channels=(256, 1024, 512, 256, 256, 128),
        num_classes=80,
        use_depthwise=True,  # SSDLite: separable convs in the head (paper Sec. 4)
        norm_cfg=det_norm_cfg,
        act_cfg=det_act_cfg,
        init_cfg=dict(type='Normal', layer='Conv2d', std=0.001),
        # anchors of mmdet's ssdlite_mobilenetv2 (320x320 input)
        anchor_generator=dict(
            type='SSDAnchorGenerator',
            scale_major=False,
            strides=[16, 32, 64, 107, 160, 320],
            ratios=[[2, 3], [2, 3], [2, 3], [2, 3], [2, 3], [2, 3]],
            min_sizes=[48, 100, 150, 202, 253, 304],
            max_sizes=[100, 150, 202, 253, 304, 320]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[0.1, 0.1, 0.2, 0.2])),
    train_cfg=dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.5,
            min_pos_iou=0.,
            ignore_iof_thr=-1,
            gt_max_assign_all=False),
        sampler=dict(type='PseudoSampler'),
        smoothl1_beta=1.,
        allowed_border=-1,
        pos_weight=-1,
        neg_pos_ratio=3,
        debug=False),
    test_cfg=dict(
        nms_pre=1000,
        nms=dict(type='nms', iou_threshold=0.45),
        min_bbox_size=0,
        score_thr=0.02,
        max_per_img=200))

# mmdet's SSD augmentation pipeline
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='Expand',
        mean=data_preprocessor['mean'],
        to_rgb=data_preprocessor['bgr_to_rgb'],
        ratio_range=(1, 4)),
    dict(
        type='MinIoURandomCrop',
        min_ious=(0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size=0.3),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='PhotoMetricDistortion',
        brightness_delta=32,
        contrast_range=(0.5, 1.5),
        saturation_range=(0.5, 1.5),
        hue_delta=18),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
# Total batch 192 = 8 GPUs x 24 (supp. D.1, following mmdetection).
train_dataloader = dict(
    batch_size=24,
    num_workers=4,
    batch_sampler=None,
    dataset=dict(
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline))  # COCO 2017 train (mmdet's coco_detection)
val_dataloader = dict(batch_size=8, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# val_evaluator / test_evaluator: COCO bbox mAP (mmdet's coco_detection base)

max_epochs = 200  # supp. D.1: 200 epochs
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    # supp. D.1: linear warm-up, ratio 0.001, 4500 iterations
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=4500),
    # supp. D.1: cosine learning-rate schedule over the 200 epochs
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs, end=max_epochs,
         by_epoch=True, eta_min=0)
]
optim_wrapper = dict(
    type='OptimWrapper',
    # supp. D.1: SGD, lr 0.05, momentum 0.9, weight decay 1e-4
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=3,
                    save_best='coco/bbox_mAP', rule='greater'))
custom_hooks = [
    dict(type='NumClassCheckHook'),
    dict(type='CheckInvalidLossHook', interval=50, priority='VERY_LOW')
]
env_cfg = dict(cudnn_benchmark=True)

# supp. D.1: effective batch size 192 (8 GPUs x 24); the lr above is for it.
auto_scale_lr = dict(enable=False, base_batch_size=192)
