# mmdeploy 1.3.1 deploy config: SSDLite-MobileOne to a Core ML ML program, static 1x3x320x320.
# The end-to-end detector ends in mmdeploy's TorchScript NMS op, which needs mmdeploy's
# compiled custom-op library (not in the PyPI wheel): see the README's "mmdeploy" section
# for what works instead.
_base_ = ['./_base_/coreml.py', './_base_/mmdet_ssdlite.py']
ir_config = dict(
    output_names=['dets', 'labels'],
    input_shape=[320, 320])  # (W, H), mmdeploy's order
backend_config = dict(model_inputs=[
    dict(
        input_shapes=dict(
            input=dict(
                min_shape=[1, 3, 320, 320],
                max_shape=[1, 3, 320, 320],
                default_shape=[1, 3, 320, 320])))
])
