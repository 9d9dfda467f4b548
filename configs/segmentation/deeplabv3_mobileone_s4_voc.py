_base_ = ['./_base_/deeplabv3_mobileone_voc.py']

# ImageNet-1k MobileOne-S4 checkpoint for the backbone. Make it with
#   python tools/convert_checkpoint.py mobileone_s4_unfused.pth.tar checkpoints/mobileone_s4_in1k.pth
# (Apple's released file) or train configs/classification/mobileone_s4_in1k.py.
pretrained = 'checkpoints/mobileone_s4_in1k.pth'

# Paper Table 9b (Pascal VOC 2012 val): MobileOne-S4† + DeepLabV3 80.1 mIoU
# (MobileNetV2-x1.0: 75.7). Not reproduced here: no VOC/COCO, no GPUs.
# The paper's VOC models were trained on COCO + VOC (supp. E.1): that recipe is
# deeplabv3_mobileone_s4_coco-voc.py.
# S4 for segmentation is trained without Squeeze-Excite (paper Table 9b, †):
# the S4 preset with use_se=False. The ImageNet S4 checkpoint's SE weights
# are left unused when it is loaded.
model = dict(
    backbone=dict(
        arch='s4', use_se=False, init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=2048),  # stage 4 width
    auxiliary_head=dict(in_channels=896))  # stage 3 width
