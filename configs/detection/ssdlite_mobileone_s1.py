_base_ = ['./_base_/ssdlite_mobileone_coco.py']

# ImageNet-1k MobileOne-S1 checkpoint for the backbone. Make it with
#   python tools/convert_checkpoint.py mobileone_s1_unfused.pth.tar checkpoints/mobileone_s1_in1k.pth
# (Apple's released file) or train configs/classification/mobileone_s1_in1k.py.
pretrained = 'checkpoints/mobileone_s1_in1k.pth'

# Paper Table 9a (COCO val2017, 320x320): MobileOne-S1 + SSDLite 25.7 mAP
# (MobileNetV2 + SSDLite: 22.1). Not reproduced here: no COCO, no GPUs.
model = dict(
    backbone=dict(arch='s1', init_cfg=dict(checkpoint=pretrained)),
    neck=dict(
        in_channels=(512, 1280),
        out_channels=(512, 1280, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(512, 1280, 512, 256, 256, 128)))
