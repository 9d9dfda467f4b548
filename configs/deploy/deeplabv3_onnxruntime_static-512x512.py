# mmdeploy 1.3.1 deploy config: DeepLabV3-MobileOne
# (configs/segmentation/deeplabv3_mobileone_s*_{voc,ade20k}.py) to ONNX Runtime,
# static 1x3x512x512 (paper Sec. 4 "Semantic segmentation": 512x512 crops).
# mmdeploy fuses our backbone before export: it calls model.backbone.switch_to_deploy().
_base_ = ['./_base_/onnxruntime.py', './_base_/mmseg.py']
onnx_config = dict(input_shape=[512, 512])  # (W, H), mmdeploy's order
