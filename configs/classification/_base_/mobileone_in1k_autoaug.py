# The S2/S3/S4 recipe: mobileone_in1k.py + AutoAugment (ImageNet policy) whose
# strength alpha grows with the resolution (supp. C.1, Table 10): every op's
# magnitude level (0-9) is multiplied by alpha = 0.3 for epochs 0-38, 0.6 for
# 39-113 and 1.0 for 114-299 (0-based). Only the pipelines and the hook that
# switches them differ from the base.
_base_ = ['./mobileone_in1k.py']

# mmpretrain's AutoAugment ops; fill with the BGR mean, bicubic rotate/shear
# (as mmpretrain's imagenet_bs64_autoaug.py)
aa_hparams = dict(pad_val=[104, 116, 124], interpolation='bicubic')

train_pipeline = [  # epochs 0-38
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=160, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mobileone_mm.ScaledAutoAugment', policies='imagenet',
         strength=0.3, hparams=aa_hparams),
    dict(type='PackInputs'),
]
train_pipeline_192 = [  # epochs 39-113
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=192, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mobileone_mm.ScaledAutoAugment', policies='imagenet',
         strength=0.6, hparams=aa_hparams),
    dict(type='PackInputs'),
]
train_pipeline_224 = [  # epochs 114-299
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mobileone_mm.ScaledAutoAugment', policies='imagenet',
         strength=1.0, hparams=aa_hparams),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# as in the base, with the AutoAugment pipelines
custom_hooks = [
    dict(
        type='SwitchRecipeHook',
        schedule=[
            dict(action_epoch=39 + 1, train_pipeline=train_pipeline_192),
            dict(action_epoch=114 + 1, train_pipeline=train_pipeline_224),
        ]),
    dict(type='EMAHook', momentum=5e-4, update_buffers=True,
         priority='ABOVE_NORMAL'),  # decay 0.9995 (Sec. 4)
]
