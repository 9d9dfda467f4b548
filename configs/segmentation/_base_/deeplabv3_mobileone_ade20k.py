# DeepLabV3-MobileOne on ADE20K (paper Sec. 4 and supp. E.1: "the same
# hyperparameters and augmentations" as VOC): 150 classes, label 0 ("other")
# ignored via reduce_zero_label, 20,210 train / 2,000 val images. Variant files
# (deeplabv3_mobileone_s*_ade20k.py) set the arch, channels and checkpoint.
_base_ = [
    './deeplabv3_mobileone.py',
    'mmseg::_base_/datasets/ade20k.py',
]
crop_size = {{_base_.paper_crop_size}}
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
train_pipeline = {{_base_.paper_train_pipeline}}
# Total batch 32 (8 x 4): 20,210 / 32 = 632 iterations per epoch, 31,600 for
# the 50 epochs.
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
