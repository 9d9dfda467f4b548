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
    backbone=dict(init_cfg=None),  # from scratch: a demo has no ImageNet weights
    bbox_head=dict(
        num_classes=3,
        # the 320-px SSDLite anchors scaled to 128 px; feature maps are
        # 8, 4, 2, 1, 1, 1 cells wide
        anchor_generator=dict(
            strides=[16, 32, 64, 128, 128, 128],
            min_sizes=[19, 40, 60, 81, 101, 122],
            max_sizes=[40, 60, 81, 101, 122, 128])))

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
max_epochs = 12  # 67 iterations each with 800 images
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=50),
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs,
         end=max_epochs, by_epoch=True, eta_min=0)
]
optim_wrapper = dict(optimizer=dict(lr=0.05))  # batch 12, from scratch
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
