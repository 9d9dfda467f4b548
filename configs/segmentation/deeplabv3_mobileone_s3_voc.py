_base_ = ['./_base_/deeplabv3_mobileone_voc.py']

# ImageNet-1k MobileOne-S3 checkpoint for the backbone. Make it with
#   python tools/convert_checkpoint.py mobileone_s3_unfused.pth.tar checkpoints/mobileone_s3_in1k.pth
# (Apple's released file) or train configs/classification/mobileone_s3_in1k.py.
pretrained = 'checkpoints/mobileone_s3_in1k.pth'

# Paper Table 9b (Pascal VOC 2012 val): MobileOne-S3 + DeepLabV3 78.8 mIoU
# (MobileNetV2-x1.0: 75.7). Not reproduced here: no VOC/COCO, no GPUs.
# The paper's VOC models were trained on COCO + VOC (supp. E.1): that recipe is
# deeplabv3_mobileone_s3_coco-voc.py.
model = dict(
    backbone=dict(arch='s3', init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=2048),  # stage 4 width
    auxiliary_head=dict(in_channels=768))  # stage 3 width
