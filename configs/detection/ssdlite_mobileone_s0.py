_base_ = ['./_base_/ssdlite_mobileone_coco.py']

# ImageNet-1k MobileOne-S0 checkpoint for the backbone. Make it with
#   python tools/convert_checkpoint.py mobileone_s0_unfused.pth.tar checkpoints/mobileone_s0_in1k.pth
# (Apple's released file) or train configs/classification/mobileone_s0_in1k.py.
pretrained = 'checkpoints/mobileone_s0_in1k.pth'

# Paper Table 9a reports no S0 detector (S1 25.7, S2 26.6, S3 27.3, S4 29.4 mAP;
# MobileNetV2 + SSDLite 22.1). Not reproduced here: no COCO, no GPUs.
model = dict(
    backbone=dict(arch='s0', init_cfg=dict(checkpoint=pretrained)),
    neck=dict(
        in_channels=(256, 1024),
        out_channels=(256, 1024, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(256, 1024, 512, 256, 256, 128)))
