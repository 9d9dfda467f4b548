# mmdeploy 1.3.1 deploy config: DeepLabV3-MobileOne to a Core ML ML program, static 1x3x512x512.
_base_ = ['./_base_/coreml.py', './_base_/mmseg.py']
ir_config = dict(input_shape=[512, 512])  # (W, H), mmdeploy's order
backend_config = dict(model_inputs=[
    dict(
        input_shapes=dict(
            input=dict(
                min_shape=[1, 3, 512, 512],
                max_shape=[1, 3, 512, 512],
                default_shape=[1, 3, 512, 512])))
])
