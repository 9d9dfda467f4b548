# DeepLabV3-MobileOne on ADE20K (paper Sec. 4 and supp. E.1: "the same
# hyperparameters and augmentations" as VOC): 150 classes, label 0 ("other")
# ignored via reduce_zero_label, 20,210 train / 2,000 val images. Variant files
# (deeplabv3_mobileone_s*_ade20k.py) set the arch, channels and checkpoint.
_base_ = [
    './deeplabv3_mobileone.py',
    'mmseg::_base_/datasets/ade20k.py',
]
crop_size = (512, 512)  # paper Sec. 4 / MobileViT: 512x512 crops
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))

# supp. E.1: random resize, random crop and horizontal flip only.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
# Total batch 32 = 8 GPUs x 4 images: 20,210 / 32 = 632 iterations per epoch,
# 31,600 for the 50 epochs.
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
auto_scale_lr = dict(enable=False, base_batch_size=32)
