# MobileOne-S0 classifier with the fused (inference-time) backbone: every
# block is one conv + ReLU (paper Sec. 3.1, Fig. 3). For tools/test.py and
# mmpretrain's inferencers with a checkpoint that tools/reparameterize.py
# wrote from a mobileone_s0_in1k.py checkpoint; gives the same predictions.
# Not for training (the train-time branches are what the recipe trains).
_base_ = ['./mobileone_s0_in1k.py']

model = dict(backbone=dict(deploy=True))
