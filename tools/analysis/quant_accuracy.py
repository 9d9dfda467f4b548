"""The int8 accuracy cost of a trained model: every calibration method and
weight granularity, measured in one pass over the config's test set.

    python tools/analysis/quant_accuracy.py CONFIG CHECKPOINT --work-dir DIR
        [--granularity per_tensor per_channel]
        [--method minmax entropy percentile] [--calib-images 32]
        [--calib-split train|val] [--cfg-options KEY=VALUE ...]

Fuses the model, exports it to fp32 ONNX, quantizes it to int8 (ONNX
Runtime static QDQ) once per variant on the same calibration images, and
reports the config's metric for PyTorch, ONNX Runtime fp32 and each int8
model with its drop, plus the worst layers by SNR; DIR/quant_accuracy.json.
"""
import argparse
from mobileone_mm.deploy.quantization.calibration import SPLITS
from mobileone_mm.deploy.quantization.onnxruntime_int8 import METHODS
from mobileone_mm.deploy.quantization.study import (GRANULARITIES,
                                                    format_study, quant_study)
from mobileone_mm.engine.launch import add_output_args, run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    add_output_args(parser, 'output folder', work_dir_required=True)
    parser.add_argument('--granularity', nargs='+',
                        default=list(GRANULARITIES), choices=GRANULARITIES)
    parser.add_argument('--method', nargs='+', default=list(METHODS),
                        choices=METHODS)
    parser.add_argument('--calib-images', type=int, default=32)
    parser.add_argument('--calib-split', default='train', choices=SPLITS)
    return parser.parse_args(argv)


def _study(args) -> None:
    result = quant_study(args.config, args.checkpoint, args.work_dir,
                         args.granularity, args.method, args.calib_images,
                         args.calib_split, cfg_options=args.cfg_options)
    print(format_study(result))


def main(argv=None):
    run_tool(_study, parse_args(argv))


if __name__ == '__main__':
    main()
