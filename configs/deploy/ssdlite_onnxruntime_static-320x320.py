# mmdeploy 1.3.1 deploy config: SSDLite-MobileOne (configs/detection/ssdlite_mobileone_s*.py)
# to ONNX Runtime, static 1x3x320x320 (paper Sec. 4 / supp. D.1: SSDLite at 320x320).
# The end-to-end graph ends in ONNX NonMaxSuppression (a standard ONNX op, run by plain
# onnxruntime; no mmdeploy custom ops needed).
# mmdeploy fuses our backbone before export: it calls model.backbone.switch_to_deploy().
_base_ = ['./_base_/onnxruntime.py', './_base_/mmdet_ssdlite.py']
onnx_config = dict(
    output_names=['dets', 'labels'],
    input_shape=[320, 320])  # (W, H), mmdeploy's order
