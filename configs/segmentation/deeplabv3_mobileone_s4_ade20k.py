_base_ = ['./_base_/deeplabv3_mobileone_ade20k.py']

# ImageNet-1k MobileOne-S4 checkpoint for the backbone. Make it with
#   python tools/convert_checkpoint.py mobileone_s4_unfused.pth.tar checkpoints/mobileone_s4_in1k.pth
# (Apple's released file) or train configs/classification/mobileone_s4_in1k.py.
pretrained = 'checkpoints/mobileone_s4_in1k.pth'

# Paper Table 9b (ADE20K val): MobileOne-S4† + DeepLabV3 38.2 mIoU
# (MobileNetV2-x1.0: 34.1). Not reproduced here: no ADE20K, no GPUs.
# S4 for segmentation is trained without Squeeze-Excite (paper Table 9b, †):
# the S4 preset with use_se=False. The ImageNet S4 checkpoint's SE weights
# are left unused when it is loaded.
model = dict(
    backbone=dict(
        arch='s4', use_se=False, init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=2048),  # stage 4 width
    auxiliary_head=dict(in_channels=896))  # stage 3 width
