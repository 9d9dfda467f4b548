# mmdeploy 1.3.1 deploy config: SSDLite-MobileOne (configs/detection/ssdlite_mobileone_s*.py)
# to ONNX Runtime, static 1x3x320x320 (paper Sec. 4 / supp. D.1: SSDLite at 320x320).
# Standalone: the mmdeploy wheel ships no configs; the values are those of mmdeploy's
# configs/_base_/onnx_config.py + configs/mmdet/_base_/base_static.py +
# configs/_base_/backends/onnxruntime.py. The end-to-end graph ends in ONNX NonMaxSuppression
# (a standard ONNX op, run by plain onnxruntime; no mmdeploy custom ops needed).
# mmdeploy fuses our backbone before export: it calls model.backbone.switch_to_deploy().
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=11,
    save_file='end2end.onnx',
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
backend_config = dict(type='onnxruntime')
