# mmdeploy 1.3.1 deploy config: DeepLabV3-MobileOne
# (configs/segmentation/deeplabv3_mobileone_s*_{voc,ade20k}.py) to ONNX Runtime,
# static 1x3x512x512 (paper Sec. 4 "Semantic segmentation": 512x512 crops).
# Standalone: the mmdeploy wheel ships no configs; the values are those of mmdeploy's
# configs/_base_/onnx_config.py + configs/mmseg/segmentation_static.py +
# configs/_base_/backends/onnxruntime.py. The graph outputs the per-pixel class map
# (with_argmax=True, mmdeploy's default for mmseg).
# mmdeploy fuses our backbone before export: it calls model.backbone.switch_to_deploy().
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=11,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['output'],
    input_shape=[512, 512])  # (W, H), mmdeploy's order
codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)
backend_config = dict(type='onnxruntime')
