"""`make demo`: SSDLite-MobileOne-S0 on synthetic shapes, on CPU.

generate data -> train from scratch -> evaluate -> fuse -> evaluate again
(same mAP) -> draw predictions -> export the
fused detector (ONNX Runtime, Core ML and ncnn, checked) -> quantize it to
int8 (ONNX Runtime, calibrated on training images) and evaluate it on the
held-out split -> evaluate the complete ncnn detector (NMS inside its graph;
fp32, and fp16 as a phone runs it) on the held-out split -> summary with the
measured goal, also written to ``WORK_DIR/summary.json``.
"""
import os
import os.path as osp
import tempfile
import time
from typing import Dict, List, Optional

import cv2
import torch

from mobileone_mm.datasets import generate_shapes
from mobileone_mm.deploy import deploy, format_report, reparameterize
from mobileone_mm.deploy.quantization.pipeline import (QuantizeOptions,
                                                quantize_config)
from mobileone_mm.deploy.quantization.report import format_quant_report
from mobileone_mm.utils.paths import config_path
from .common import (UNFUSED_FORM, data_options, make_data, prepare_folders,
                     print_timings, save_grid, stage, train_and_evaluate,
                     write_summary, yardstick_ms)

CONFIG = config_path('detection/ssdlite_mobileone_s0_shapes.py')
GOAL_MAP = 0.7
GOAL_MINUTES = 10.0
STAGES = 8


def ensure_data(root: str, num_train: int, num_val: int, seed: int) -> None:
    """The shapes data set (COCO files) at ``root``, generated unless a
    demo run already wrote the same one there."""
    make_data(root, f'shapes: {num_train} train + {num_val} val images, '
              f'seed {seed}',
              lambda: generate_shapes(root, num_train=num_train,
                                      num_val=num_val, seed=seed))


def coco_options(data_root: str, seed: int) -> Dict[str, object]:
    """``--cfg-options`` that point the demo config's loaders and COCO
    evaluators at ``data_root``."""
    ann_file = f'{data_root}/annotations/instances_val.json'
    options = data_options(data_root, seed)
    options.update({'val_evaluator.ann_file': ann_file,
                    'test_evaluator.ann_file': ann_file})
    return options


def draw(config: str, checkpoint: str, images: List[str],
         out_path: str) -> None:
    """mmdet's inferencer on the fused model, four drawn images a row."""
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=config, weights=checkpoint, device='cpu',
                               show_progress=False)
    reparameterize(inferencer.model, inplace=True)
    with tempfile.TemporaryDirectory(dir=osp.dirname(out_path)) as tmp:
        inferencer(images, out_dir=tmp, pred_score_thr=0.3, no_save_pred=True)
        save_grid([cv2.imread(osp.join(tmp, 'vis', osp.basename(p)))
                   for p in images], out_path)


def quantize_int8(checkpoint: str, work_dir: str, options: dict,
                  calib_images: int = 32, runs: int = 100) -> dict:
    """The fused detector as int8 (ONNX Runtime static QDQ, per-channel
    weights, min-max ranges from ``calib_images`` training images through
    the test pipeline), evaluated on the held-out split beside PyTorch and
    fp32 ONNX Runtime, and timed against fp32: ``tools/quantize.py ...
    --backend onnxruntime --eval``. Returns its ``quant_report.json``."""
    return quantize_config(
        CONFIG, checkpoint, work_dir=work_dir,
        options=QuantizeOptions(backends=('onnxruntime', ),
                                calib_images=calib_images,
                                calib_split='train', evaluate=True,
                                runs=runs),
        cfg_options=options, verbose=False)


def evaluate_ncnn(checkpoint: str, report: dict, options: dict) -> dict:
    """The complete ncnn detector the export step wrote (``report``'s
    ``full_model.ncnn``) on the held-out split: fp32 (reduced precision
    off), fp16 weights with ncnn's default options (what x86 runs of a
    phone's setting), and the network in half precision in PyTorch (fp16
    arithmetic, which this CPU's ncnn does not do), each beside the fused
    PyTorch model in one pass over the data."""
    from mobileone_mm.apis import input_shape_from_config, load_config
    from mobileone_mm.deploy.backends.ncnn import detector_predictor
    from mobileone_mm.deploy.evaluation import (evaluate, half_predictor,
                                                torch_predictor)
    from mobileone_mm.deploy.model_setup import build_for_deploy
    from mobileone_mm.deploy.postprocess import build_graph
    cfg = load_config(CONFIG, options)
    shape = input_shape_from_config(cfg)
    model, _ = build_for_deploy(cfg, checkpoint, shape, verbose=False)
    fused = reparameterize(model).eval()
    graph = build_graph(fused, cfg, shape[-2:])
    param = report['full_model']['ncnn']['path']
    metrics = evaluate(cfg, fused, dict(
        pytorch_fused=torch_predictor(fused),
        ncnn_fp32=detector_predictor(param, graph),
        ncnn_fp16_weights=detector_predictor(param, graph, fp16=True),
        pytorch_fp16=half_predictor(fused)))
    section = report['full_model']['ncnn']
    return dict(bbox_mAP={k: m['coco/bbox_mAP'] for k, m in metrics.items()},
                latency_ms=section['latency_ms']['min'],
                latency_ms_by_threads={n: s['min'] for n, s in section[
                    'latency_ms_by_threads'].items()},
                network_latency_ms=section['network_latency_ms']['min'],
                postprocess_share=section['postprocess_share'],
                onnxruntime_latency_ms=report['full_model']['onnxruntime'][
                    'latency_ms']['min'],
                path=param)


def format_ncnn(ncnn: dict) -> str:
    m = ncnn['bbox_mAP']
    return (f'ncnn complete detector, bbox mAP on the held-out split: fp32 '
            f'{m["ncnn_fp32"]:.3f}, fp16 weights (ncnn defaults on this CPU) '
            f'{m["ncnn_fp16_weights"]:.3f}; PyTorch fused {m["pytorch_fused"]:.3f}'
            f', PyTorch fp16 arithmetic {m["pytorch_fp16"]:.3f}\n'
            f'ncnn latency (min, most threads): complete {ncnn["latency_ms"]:.2f}'
            f' ms (network alone {ncnn["network_latency_ms"]:.2f} ms: decoding '
            f'+ NMS {100 * ncnn["postprocess_share"]:.1f} %); ONNX Runtime '
            f'(decoding, no NMS) {ncnn["onnxruntime_latency_ms"]:.2f} ms')


def summary_json(unfused: dict, fused: dict, quant: dict, minutes: float,
                 yardstick: float, ncnn: Optional[dict] = None) -> dict:
    """``summary.json``: bbox mAP of PyTorch (unfused), fused, ONNX Runtime
    fp32/int8 and the complete ncnn detector, latency (min ms) of ONNX
    Runtime fp32/int8 and of the complete ncnn detector, the minutes, the
    yardstick and whether the goal was met."""
    int8_map = (quant['int8'].get('metric') or {}).get('coco/bbox_mAP')
    ncnn = ncnn or {}
    result = dict(
        bbox_mAP=dict(pytorch=unfused['coco/bbox_mAP'],
                      fused=fused['coco/bbox_mAP'],
                      onnxruntime_fp32=(quant['fp32'].get('metric')
                                        or {}).get('coco/bbox_mAP'),
                      onnxruntime_int8=int8_map,
                      ncnn=(ncnn.get('bbox_mAP') or {}).get('ncnn_fp32'),
                      ncnn_fp16=(ncnn.get('bbox_mAP') or {}).get(
                          'ncnn_fp16_weights'),
                      pytorch_fp16=(ncnn.get('bbox_mAP') or {}).get(
                          'pytorch_fp16')),
        latency_ms=dict(onnxruntime_fp32=quant['fp32']['latency_ms']['min'],
                        onnxruntime_int8=quant['int8']['latency_ms']['min'],
                        ncnn=ncnn.get('latency_ms'),
                        ncnn_network=ncnn.get('network_latency_ms')),
        unfused_form=UNFUSED_FORM,
        minutes=minutes,
        yardstick_fused_s0_ms=yardstick,
        goal=dict(bbox_mAP=GOAL_MAP, minutes=GOAL_MINUTES),
        goal_met=bool(fused['coco/bbox_mAP'] >= GOAL_MAP
                      and minutes <= GOAL_MINUTES))
    return result


def _print_summary(summary: Dict, num_val: int, export_dir: str) -> None:
    print_timings(summary['timings'], summary['yardstick_fused_s0_ms'])
    maps, lat = summary['bbox_mAP'], summary['latency_ms']
    unfused, fused = maps['pytorch'], maps['fused']
    print(f'bbox mAP (held-out {num_val} images): unfused '
          f'{unfused:.3f} ({summary["unfused_form"]}), '
          f'fused {fused:.3f} ({"same" if unfused == fused else "DIFFERENT"})'
          f', ONNX Runtime int8 {maps["onnxruntime_int8"]:.3f} '
          f'(fp32 {maps["onnxruntime_fp32"]:.3f})')
    print(f'ONNX Runtime latency (min): fp32 {lat["onnxruntime_fp32"]:.2f} ms,'
          f' int8 {lat["onnxruntime_int8"]:.2f} ms')
    if maps.get('ncnn') is not None:
        print(f'ncnn complete detector: bbox mAP {maps["ncnn"]:.3f} (fp16 '
              f'weights {maps["ncnn_fp16"]:.3f}), latency (min) '
              f'{lat["ncnn"]:.2f} ms')
    print(f'total {summary["minutes"]:.1f} min; goal mAP >= {GOAL_MAP} in <= '
          f'{GOAL_MINUTES:.0f} min: '
          f'{"met" if summary["goal_met"] else "NOT met"}')
    print(f'checkpoint: {summary["checkpoint"]}\n'
          f'predictions: {summary["picture"]}\n'
          f'export: {export_dir}/ (backbone.onnx, backbone.mlpackage, '
          f'backbone.param, model.onnx, model.mlpackage, model.ncnn.param, '
          f'report.json)\n'
          f'int8: {summary["int8_dir"]}/ (model_int8.onnx, '
          f'quant_report.json)\n'
          f'summary: {summary["summary_json"]}')


def run(work_dir: str = 'work_dirs/demo', data_root: str = 'data/shapes',
        num_train: int = 800, num_val: int = 200, seed: int = 0,
        export_runs: int = 20) -> Dict:
    """The whole demo; raises :class:`UserError` before writing anything
    when ``work_dir`` or ``data_root`` is not the demos' to write."""
    prepare_folders(work_dir, data_root)
    torch.manual_seed(seed)
    start = time.time()
    timings: Dict[str, float] = {}
    options = coco_options(data_root, seed)

    stage(f'1/{STAGES} synthetic shapes data set ({data_root})')
    t = time.time()
    ensure_data(data_root, num_train, num_val, seed)
    timings['data'] = time.time() - t

    checkpoint, unfused, fused = train_and_evaluate(
        CONFIG, 'SSDLite-MobileOne-S0', work_dir, options, timings, 2, STAGES)

    stage(f'5/{STAGES} draw predictions of the fused model')
    picture = osp.join(work_dir, 'predictions.jpg')
    val_dir = osp.join(data_root, 'val')
    images = sorted(os.listdir(val_dir))[:8]
    draw(CONFIG, checkpoint, [osp.join(val_dir, i) for i in images], picture)

    stage(f'6/{STAGES} export the fused detector to ONNX Runtime, Core ML and '
          'ncnn (tools/deploy.py)')
    t = time.time()
    export_dir = osp.join(work_dir, 'export')
    report = deploy(CONFIG, checkpoint, work_dir=export_dir, runs=export_runs,
                    full_model=True, cfg_options=options, verbose=False)
    print(format_report(report))
    timings['export'] = time.time() - t

    stage(f'7/{STAGES} int8: quantize the fused detector (ONNX Runtime, '
          'calibrated on training images) and evaluate it (tools/quantize.py)')
    t = time.time()
    int8_dir = osp.join(work_dir, 'int8')
    quant = quantize_int8(checkpoint, int8_dir, options)
    print(format_quant_report(quant))
    timings['int8'] = time.time() - t

    stage(f'8/{STAGES} ncnn: the complete detector (DetectionOutput inside) '
          'on the held-out split, fp32 and fp16')
    t = time.time()
    ncnn = evaluate_ncnn(checkpoint, report, options)
    print(format_ncnn(ncnn))
    timings['ncnn'] = time.time() - t

    minutes = (time.time() - start) / 60
    summary = summary_json(unfused, fused, quant, minutes, yardstick_ms(),
                           ncnn)
    summary_path = write_summary(summary, work_dir)
    summary.update(map_unfused=unfused['coco/bbox_mAP'],
                   map_fused=fused['coco/bbox_mAP'], checkpoint=checkpoint,
                   picture=picture, report=osp.join(export_dir, 'report.json'),
                   int8_dir=int8_dir, summary_json=summary_path,
                   timings=timings)
    _print_summary(summary, num_val, export_dir)
    return summary
