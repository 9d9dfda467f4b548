# The README's `make demo`: SSDLite + MobileOne-S0 trained from scratch on the
# synthetic shapes data set (python tools/make_shapes_dataset.py data/shapes)
# on a 2-core CPU. Only data, schedule and what a 2-core CPU needs differ from
# ssdlite_mobileone_s0.py (the paper's COCO recipe).
_base_ = ['./ssdlite_mobileone_s0.py']

# ---- data: 3 shape classes, 128x128 images with 1-8 shapes of 28-56 px
# (tools/make_shapes_dataset.py defaults), COCO-format annotations
data_root = 'data/shapes/'
metainfo = dict(
    classes=('square', 'circle', 'triangle'),
    palette=[(220, 20, 60), (0, 128, 255), (60, 180, 75)])
# CPU: 128x128 input (the images' own size), 6x fewer pixels than COCO's 320.
input_size = 128

model = dict(
    backbone=dict(
        init_cfg=None,  # from scratch: a demo has no ImageNet weights
        # from scratch, a plain 43-layer BN net barely moves in minutes;
        # gamma 0.1 on the branches of identity blocks starts it near its
        # identity paths (README, "The backbone"): bbox mAP 0.005 -> 0.21
        # with SGD, 12 epochs
        branch_gamma=0.1),
    bbox_head=dict(
        num_classes=3,
        # Anchors fitted to the data's 17-57 px boxes at 128 px (feature maps
        # 8, 4, 2, 1, 1, 1 cells wide, stride 16-128). The 320-px SSDLite
        # anchors scaled to 128 px (min_sizes 19, 40, ..., ratios 2 and 3
        # everywhere) put boxes over 40 px on the stride-32 level: 28 % of
        # the boxes had no anchor with IoU >= 0.5 (1.5 matched anchors per
        # box); these sizes leave 4 % (3.2 per box): bbox mAP 0.48 -> 0.65.
        anchor_generator=dict(
            strides=[16, 32, 64, 128, 128, 128],
            ratios=[[2], [2], [2, 3], [2, 3], [2, 3], [2, 3]],
            min_sizes=[28, 40, 60, 81, 101, 122],
            max_sizes=[56, 60, 81, 101, 122, 128])),
    # Localization, not detection, limits this demo (bbox mAP_50 0.94,
    # mAP_75 0.71): a smooth-L1 beta of 0.11 (Faster R-CNN's; SSD's is 1.0)
    # keeps the gradient of small box errors at full size: bbox mAP 0.632 ->
    # 0.659 (mAP_75 0.71 -> 0.73) in one 10-epoch run each.
    train_cfg=dict(smoothl1_beta=0.11))

# Short schedule: random flip only (SSD's expand/crop/colour augmentation pays
# off over hundreds of epochs, not ten).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=12,  # CPU: per-image cost is lowest around 12 at 128 px
    num_workers=1,  # 2 cores: one loads data, the model gets the rest
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# ---- schedule: minutes on a CPU instead of 200 epochs on 8 GPUs
max_epochs = 10  # 67 iterations each (800 images); mAP 0.65 at 10 and 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=50),
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs,
         end=max_epochs, by_epoch=True, eta_min=0)
]
# AdamW instead of the paper's SGD: in 12 epochs from scratch it reached
# bbox mAP 0.44 (lr 2e-3) and 0.48 (lr 4e-3; 0.46 at 8e-3) where SGD lr 0.05
# reached 0.21 (before the anchors were fitted).
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.004, weight_decay=0.05))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
