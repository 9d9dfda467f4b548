# MobileOne ImageNet-1k pretraining on mmpretrain with the paper's recipe
# (Sec. 3.4, Sec. 4 "Image Classification on ImageNet-1K", supp. C.1 and
# Table 10). This base is the S0/S1 recipe: random-resized-crop and
# horizontal flip only. mobileone_in1k_autoaug.py adds AutoAugment (S2-S4).
# Variant files (mobileone_s*_in1k.py) set the arch and the head width.
#
# What the paper does not state and is chosen here:
# - no lr warm-up and lr annealed to 0 (the paper names only "cosine");
#   mmpretrain's own MobileOne configs add a 5-epoch warm-up, eta_min 1e-6;
# - weight decay on every parameter, BN and biases included (the paper names
#   no exemption; mmpretrain's configs exempt norm layers);
# - EMA also of the BN buffers (update_buffers=True, as timm's ModelEma);
# - the resize/crop details of RandomResizedCrop and of the 224 px
#   evaluation (Pillow, resize to 256 then centre crop), as mmpretrain's.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32_pil_resize.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mobileone_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'

input_size = 224  # Sec. 4: "evaluated on images of resolution 224x224"

data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],  # ImageNet RGB mean/std
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
model = dict(
    type='ImageClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        # ours: mmpretrain registers its own, different 'MobileOne'. The
        # checkpoint's 'backbone.*' weights load into the detection and
        # segmentation configs through init_cfg with prefix='backbone.'.
        type='mobileone_mm.MobileOne',
        arch='s0',
        out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1024,  # stage-4 width of the arch (S0: 1024)
        # Sec. 4 / supp. C.1: cross-entropy with label smoothing 0.1
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))

# ---- progressive learning (supp. C.1, Table 10). The training resolution
# grows with the epoch (0-based): 160 px for epochs 0-38, 192 px for 39-113,
# 224 px for 114-299. mmpretrain's SwitchRecipeHook counts epochs from 1
# (action_epoch=40 switches before 0-based epoch 39), hence the "+ 1" below.
train_pipeline = [  # epochs 0-38
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=160, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_pipeline_192 = [  # epochs 39-113
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=192, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_pipeline_224 = [  # epochs 114-299
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=input_size),
    dict(type='PackInputs'),
]
# Sec. 4 / supp. C.1: effective batch 256 on 8 GPUs = 8 x 32
train_dataloader = dict(
    batch_size=32, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# val_evaluator / test_evaluator: top-1/top-5 accuracy (mmpretrain's base)

# ---- schedule
max_epochs = 300  # Sec. 4 / supp. C.1: 300 epochs
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    type='OptimWrapper',
    # Sec. 4 / supp. C.1: SGD with momentum (0.9; the paper gives no value),
    # initial lr 0.1 for batch 256, initial weight decay 1e-4
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    # Sec. 4: "initial learning rate is 0.1 and annealed using a cosine
    # schedule", over all 300 epochs (updated every iteration)
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=0., by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True),
    # Sec. 3.4 / 4: weight decay 1e-4 "annealed to 1e-5 using the same cosine
    # schedule" (Table 5 on S2: +0.5% top-1)
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
         T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
# Sec. 4: effective batch 256; tools/train.py --auto-scale-lr scales lr 0.1
# by (actual total batch) / 256
auto_scale_lr = dict(base_batch_size=256)

custom_hooks = [
    # Table 10 resolution switches (Table 5 on S2: progressive learning +0.4%)
    dict(
        type='SwitchRecipeHook',
        schedule=[
            dict(action_epoch=39 + 1, train_pipeline=train_pipeline_192),
            dict(action_epoch=114 + 1, train_pipeline=train_pipeline_224),
        ]),
    # Sec. 4 / supp. C.1: EMA of the weights with decay 0.9995, i.e. mmengine
    # momentum 1 - 0.9995 = 5e-4 (Table 5 on S2: +0.1%). EMAHook validates the
    # EMA weights and saves them as the checkpoint's 'state_dict' (the raw
    # weights go to 'ema_state_dict'), so the detection/segmentation
    # hand-off loads the EMA weights.
    dict(type='EMAHook', momentum=5e-4, update_buffers=True,
         priority='ABOVE_NORMAL'),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                    save_best='accuracy/top1', rule='greater'))
