# The mmdet codebase of SSDLite-MobileOne (configs/detection/ssdlite_mobileone_s*.py):
# end-to-end detector, as mmdeploy 1.3.1's configs/mmdet/_base_/base_static.py.
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    # mmdeploy's SSD export takes nms_pre (1000), score_thr (0.02), the NMS IoU (0.45) and
    # max_per_img (200) from the model config's test_cfg; the thresholds below are only its
    # fallbacks. Unlike mmdet, which keeps a level's nms_pre best (box, class) pairs, the
    # graph keeps a level's nms_pre best boxes with all their scores, ranked by their best
    # score over all classes but the last (mmdeploy 1.3.1 slices off the background twice):
    # detections above both cuts agree; below them, and for the last class, they may differ.
    post_processing=dict(
        score_threshold=0.02,
        confidence_threshold=0.005,
        iou_threshold=0.45,
        max_output_boxes_per_class=200,  # = max_per_img: the cap never drops a kept box
        pre_top_k=5000,  # > the 1834 boxes left by nms_pre at 320x320: never binds
        keep_top_k=200,
        background_label_id=-1,
    ))
