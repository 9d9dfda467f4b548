# MobileOne-S0 on ImageNet-1k with the paper's recipe: random-resized-crop and
# horizontal flip only (Sec. 4), progressive resolution (Table 10).
_base_ = ['./_base_/mobileone_in1k.py']

# Paper Table 8: MobileOne-S0 71.4% top-1 (ImageNet-1k val, 224x224), with
# k=4 over-parameterized branches (Table 6: 70.9 with k=1; Table 7: 69.6
# without re-parameterizable branches). Not reproduced here: no ImageNet, no
# GPUs.
model = dict(
    backbone=dict(arch='s0'),
    head=dict(in_channels=1024))  # S0 stage-4 width
