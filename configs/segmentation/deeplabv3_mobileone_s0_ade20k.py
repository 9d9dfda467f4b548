_base_ = ['./_base_/deeplabv3_mobileone_ade20k.py']

# ImageNet-1k MobileOne-S0 checkpoint for the backbone. Make it with
#   python tools/convert_checkpoint.py mobileone_s0_unfused.pth.tar checkpoints/mobileone_s0_in1k.pth
# (Apple's released file) or train configs/classification/mobileone_s0_in1k.py.
pretrained = 'checkpoints/mobileone_s0_in1k.pth'

# Paper Table 9b (ADE20K val): MobileOne-S0 + DeepLabV3 33.1 mIoU
# (MobileNetV2-x1.0: 34.1). Not reproduced here: no ADE20K, no GPUs.
model = dict(
    backbone=dict(arch='s0', init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=1024),  # stage 4 width
    auxiliary_head=dict(in_channels=256))  # stage 3 width
