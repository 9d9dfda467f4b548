# The paper's VOC recipe (supp. E.1, following MobileViT): train on COCO and
# VOC together. Paper Table 9b: MobileOne-S2 + DeepLabV3 77.9 mIoU on VOC val.
# COCO masks: python tools/coco_to_voc_masks.py \
#   data/coco/annotations/instances_train2017.json data/coco/voc_masks/train2017
# Iterations: 50 epochs of (10,582 + the COCO image count that tool prints) / 32.
_base_ = ['./deeplabv3_mobileone_s2_voc.py']

train_dataloader = dict(
    dataset=dict(datasets=[
        {{_base_.dataset_train}}, {{_base_.dataset_aug}},
        {{_base_.dataset_coco_voc}}
    ]))
