# MobileOne-S3 on ImageNet-1k with the paper's recipe: AutoAugment whose
# strength grows with the resolution (supp. C.1, Table 10).
_base_ = ['./_base_/mobileone_in1k_autoaug.py']

# Paper Table 8: MobileOne-S3 78.1% top-1 (ImageNet-1k val, 224x224; Table 7:
# 77.2 without re-parameterizable branches). Not reproduced here: no
# ImageNet, no GPUs.
model = dict(
    backbone=dict(arch='s3'),
    head=dict(in_channels=2048))  # S3 stage-4 width
