# TorchScript + Core ML ML program, as mmdeploy 1.3.1's configs/_base_/torchscript_config.py
# and configs/_base_/backends/coreml.py (the mmdeploy wheel ships no configs). mmdeploy's
# Core ML route is PyTorch -> TorchScript -> coremltools. Task files set output_names,
# input_shape and backend_config.model_inputs (the static input shape).
ir_config = dict(
    type='torchscript',
    save_file='end2end.pt',
    input_names=['input'],
    output_names=['output'],
    input_shape=None)
backend_config = dict(
    type='coreml',
    convert_to='mlprogram',
    common_config=dict(
        compute_precision='FLOAT32',
        minimum_deployment_target='iOS16',
        skip_model_load=True))  # loading needs macOS; the .mlpackage is written on any OS
