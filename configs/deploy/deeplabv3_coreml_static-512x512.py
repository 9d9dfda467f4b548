# mmdeploy 1.3.1 deploy config: DeepLabV3-MobileOne to a Core ML ML program, static 1x3x512x512.
# Standalone: the mmdeploy wheel ships no configs; the values are those of mmdeploy's
# configs/_base_/torchscript_config.py + configs/_base_/backends/coreml.py +
# configs/mmseg/segmentation_coreml_static-512x1024.py. PyTorch -> TorchScript -> coremltools.
ir_config = dict(
    type='torchscript',
    save_file='end2end.pt',
    input_names=['input'],
    output_names=['output'],
    input_shape=[512, 512])  # (W, H), mmdeploy's order
codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)
backend_config = dict(
    type='coreml',
    convert_to='mlprogram',
    common_config=dict(
        compute_precision='FLOAT32',
        minimum_deployment_target='iOS16',
        skip_model_load=True),  # loading needs macOS; the .mlpackage is written on any OS
    model_inputs=[
        dict(
            input_shapes=dict(
                input=dict(
                    min_shape=[1, 3, 512, 512],
                    max_shape=[1, 3, 512, 512],
                    default_shape=[1, 3, 512, 512])))
    ])
