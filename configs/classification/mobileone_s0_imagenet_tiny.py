# MobileOne-S0 trained from scratch on the tiny generated ImageNet-layout data
# set (python tools/make_imagenet_tiny.py data/imagenet_tiny_study --num-train 600
# --num-val 300: one shape per image, labels 0-2 of the 1000 classes) on a
# 2-core CPU, in minutes: the classifier of the int8 accuracy study
# (tools/analysis/quant_accuracy.py). Only data, resolution, schedule and what
# training from scratch on a CPU needs differ from mobileone_s0_in1k.py.
_base_ = ['./mobileone_s0_in1k.py']

data_root = 'data/imagenet_tiny_study/'
input_size = 96  # the generated images' own size instead of 224
model = dict(
    backbone=dict(
        # from scratch, a plain 43-layer BN net barely moves in minutes;
        # gamma 0.1 on the branches of identity blocks starts it near its
        # identity paths (README, "The backbone")
        branch_gamma=0.1))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=input_size, crop_ratio_range=(0.5,
                                                                       1.0),
         backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=input_size, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=input_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=1,  # 2 cores: one loads data, the model gets the rest
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# ---- schedule: minutes on a CPU instead of 300 epochs on 8 GPUs
max_epochs = 6
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
# AdamW from scratch (the shapes demos' choice), no progressive resizing and
# no EMA (its 5e-4 momentum averages over more steps than the whole run)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=3e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=20),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=0., by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True)
]
auto_scale_lr = None
custom_hooks = []
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs,
                    max_keep_ckpts=1, save_best=None))
env_cfg = dict(cudnn_benchmark=False)
