_base_ = ['./_base_/ssdlite_mobileone_coco.py']

# ImageNet-1k MobileOne-S3 checkpoint for the backbone. Make it with
#   python tools/convert_checkpoint.py mobileone_s3_unfused.pth.tar checkpoints/mobileone_s3_in1k.pth
# (Apple's released file) or train configs/classification/mobileone_s3_in1k.py.
pretrained = 'checkpoints/mobileone_s3_in1k.pth'

# Paper Table 9a (COCO val2017, 320x320): MobileOne-S3 + SSDLite 27.3 mAP
# (MobileNetV2 + SSDLite: 22.1). Not reproduced here: no COCO, no GPUs.
model = dict(
    backbone=dict(arch='s3', init_cfg=dict(checkpoint=pretrained)),
    neck=dict(
        in_channels=(768, 2048),
        out_channels=(768, 2048, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(768, 2048, 512, 256, 256, 128)))
