_base_ = ['./_base_/deeplabv3_mobileone_voc.py']

# ImageNet-1k MobileOne-S1 checkpoint for the backbone. Make it with
#   python tools/convert_checkpoint.py mobileone_s1_unfused.pth.tar checkpoints/mobileone_s1_in1k.pth
# (Apple's released file) or train configs/classification/mobileone_s1_in1k.py.
pretrained = 'checkpoints/mobileone_s1_in1k.pth'

# Paper Table 9b (Pascal VOC 2012 val): MobileOne-S1 + DeepLabV3 77.3 mIoU
# (MobileNetV2-x1.0: 75.7). Not reproduced here: no VOC/COCO, no GPUs.
# The paper's VOC models were trained on COCO + VOC (supp. E.1): that recipe is
# deeplabv3_mobileone_s1_coco-voc.py.
model = dict(
    backbone=dict(arch='s1', init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=1280),  # stage 4 width
    auxiliary_head=dict(in_channels=512))  # stage 3 width
