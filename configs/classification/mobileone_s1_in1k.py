# MobileOne-S1 on ImageNet-1k with the paper's recipe: random-resized-crop and
# horizontal flip only (Sec. 4), progressive resolution (Table 10).
_base_ = ['./_base_/mobileone_in1k.py']

# Paper Table 8: MobileOne-S1 75.9% top-1 (ImageNet-1k val, 224x224), k=1
# (Table 6; Table 7: 74.6 without re-parameterizable branches). Not
# reproduced here: no ImageNet, no GPUs.
model = dict(
    backbone=dict(arch='s1'),
    head=dict(in_channels=1280))  # S1 stage-4 width
