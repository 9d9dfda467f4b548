# ONNX export + ONNX Runtime, as mmdeploy 1.3.1's configs/_base_/onnx_config.py and
# configs/_base_/backends/onnxruntime.py (the mmdeploy wheel ships no configs). Task
# files set output_names and input_shape.
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=11,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['output'],
    input_shape=None)
backend_config = dict(type='onnxruntime')
