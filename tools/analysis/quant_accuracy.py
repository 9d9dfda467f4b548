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
import sys

from mmengine.config import DictAction

from mobileone_mm.benchmark.quant_accuracy import (GRANULARITIES,
                                                   format_study, quant_study)
from mobileone_mm.deploy.calibration import SPLITS
from mobileone_mm.deploy.quantize import METHODS
from mobileone_mm.utils.errors import UserError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--work-dir', required=True, help='output folder')
    parser.add_argument('--granularity', nargs='+',
                        default=list(GRANULARITIES), choices=GRANULARITIES)
    parser.add_argument('--method', nargs='+', default=list(METHODS),
                        choices=METHODS)
    parser.add_argument('--calib-images', type=int, default=32)
    parser.add_argument('--calib-split', default='train', choices=SPLITS)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        result = quant_study(args.config, args.checkpoint, args.work_dir,
                             args.granularity, args.method,
                             args.calib_images, args.calib_split,
                             cfg_options=args.cfg_options)
    except UserError as err:
        sys.exit(f'error: {err}')
    print(format_study(result))


if __name__ == '__main__':
    main()
