# mmdeploy 1.3.1 deploy config: SSDLite-MobileOne to a Core ML ML program, static 1x3x320x320.
# Standalone: the mmdeploy wheel ships no configs; the values are those of mmdeploy's
# configs/_base_/torchscript_config.py + configs/mmdet/_base_/base_torchscript.py +
# configs/_base_/backends/coreml.py + configs/mmdet/_base_/base_coreml_static-800x1344.py.
# mmdeploy's Core ML route is PyTorch -> TorchScript -> coremltools. The end-to-end detector
# ends in mmdeploy's TorchScript NMS op, which needs mmdeploy's compiled custom-op library
# (not in the PyPI wheel): see the README's "mmdeploy" section for what works instead.
ir_config = dict(
    type='torchscript',
    save_file='end2end.pt',
    input_names=['input'],
    output_names=['dets', 'labels'],
    input_shape=[320, 320])  # (W, H), mmdeploy's order
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    # mmdeploy's SSD export takes score_thr (0.02), the NMS IoU (0.45) and max_per_img (200)
    # from the model config's test_cfg; the thresholds below are only its fallbacks.
    post_processing=dict(
        score_threshold=0.02,
        confidence_threshold=0.005,
        iou_threshold=0.45,
        max_output_boxes_per_class=200,  # = max_per_img: the cap never drops a kept box
        pre_top_k=5000,  # > the 3234 anchors at 320x320: every box reaches NMS
        keep_top_k=200,
        background_label_id=-1,
    ))
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
                    min_shape=[1, 3, 320, 320],
                    max_shape=[1, 3, 320, 320],
                    default_shape=[1, 3, 320, 320])))
    ])
