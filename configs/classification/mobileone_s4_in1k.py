# MobileOne-S4 on ImageNet-1k with the paper's recipe: AutoAugment whose
# strength grows with the resolution (supp. C.1, Table 10).
_base_ = ['./_base_/mobileone_in1k_autoaug.py']

# Paper Table 8: MobileOne-S4 79.4% top-1 (ImageNet-1k val, 224x224), the
# variant with SE-ReLU blocks (Sec. 3.3). Not reproduced here: no ImageNet,
# no GPUs.
model = dict(
    backbone=dict(arch='s4'),
    head=dict(in_channels=2048))  # S4 stage-4 width
