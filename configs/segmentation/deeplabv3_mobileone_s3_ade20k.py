_base_ = ['./_base_/deeplabv3_mobileone_ade20k.py']

# ImageNet-1k MobileOne-S3 checkpoint for the backbone. Make it with
#   python tools/convert_checkpoint.py mobileone_s3_unfused.pth.tar checkpoints/mobileone_s3_in1k.pth
# (Apple's released file) or train configs/classification/mobileone_s3_in1k.py.
pretrained = 'checkpoints/mobileone_s3_in1k.pth'

# Paper Table 9b (ADE20K val): MobileOne-S3 + DeepLabV3 36.2 mIoU
# (MobileNetV2-x1.0: 34.1). Not reproduced here: no ADE20K, no GPUs.
model = dict(
    backbone=dict(arch='s3', init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=2048),  # stage 4 width
    auxiliary_head=dict(in_channels=768))  # stage 3 width
