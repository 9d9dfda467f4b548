# The mmseg codebase of DeepLabV3-MobileOne (configs/segmentation/deeplabv3_mobileone_s*.py):
# the graph outputs the per-pixel class map (with_argmax=True, mmdeploy's default for mmseg).
codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)
