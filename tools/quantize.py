"""Quantize a fused model to int8 (ONNX Runtime) and compress it for Core ML,
with measured accuracy, per-layer error and latency.

    python tools/quantize.py CONFIG [CHECKPOINT] --work-dir DIR
        [--backend onnxruntime coreml] [--calib-images N]
        [--calib-split train|val] [--method minmax|entropy|percentile]
        [--per-tensor] [--eval] [--runs N] [--threads N]
        [--cfg-options KEY=VALUE ...]

Fuses the config's model as tools/deploy.py does, exports it to fp32 ONNX,
quantizes it to int8 QDQ on N images from the config's own data pipeline
(random input only without a checkpoint and without data: latency only, and
said so), measures every quantized tensor's SNR, times fp32 against int8,
with --eval runs the config's test set through PyTorch, ONNX Runtime fp32 and
int8, and writes DIR/quant_report.json. Exits non-zero on bad input.
"""
import argparse

from mobileone_mm.deploy.quantization.calibration import SPLITS
from mobileone_mm.deploy.quantization.onnxruntime_int8 import METHODS
from mobileone_mm.deploy.quantization.pipeline import (QUANT_BACKENDS,
                                                       QuantizeOptions,
                                                       quantize_config)
from mobileone_mm.deploy.quantization.report import format_quant_report
from mobileone_mm.engine.launch import add_output_args, run_tool


def parse_args(argv=None):
    defaults = QuantizeOptions()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='trained weights; random weights (latency '
                        'only) when omitted')
    add_output_args(parser, 'output folder (default '
                    'work_dirs/quantize/<config name>)')
    parser.add_argument('--backend', '--backends', nargs='+',
                        default=list(QUANT_BACKENDS),
                        help=f'one or both of: {" ".join(QUANT_BACKENDS)} '
                        f'(ncnn int8 needs ncnn\'s C++ tools: not here)')
    parser.add_argument('--calib-images', type=int,
                        default=defaults.calib_images)
    parser.add_argument('--calib-split', default=defaults.calib_split,
                        help=f'{"|".join(SPLITS)}: where calibration images '
                        f'come from')
    parser.add_argument('--method', default=defaults.method,
                        help=f'calibration: {"|".join(METHODS)}')
    parser.add_argument('--per-tensor', action='store_true',
                        help='one weight scale per tensor (default: per '
                        'output channel)')
    parser.add_argument('--eval', action='store_true',
                        help='run the config\'s test set and metric')
    parser.add_argument('--runs', type=int, default=defaults.runs,
                        help='timed runs of each ONNX Runtime model')
    parser.add_argument('--threads', type=int, default=defaults.threads,
                        help='ONNX Runtime threads (0: its default)')
    return parser.parse_args(argv)


def _quantize(args) -> None:
    options = QuantizeOptions(
        backends=args.backend, calib_images=args.calib_images,
        calib_split=args.calib_split, method=args.method,
        per_channel=not args.per_tensor, evaluate=args.eval,
        runs=args.runs, threads=args.threads)
    report = quantize_config(args.config, args.checkpoint,
                             work_dir=args.work_dir, options=options,
                             cfg_options=args.cfg_options)
    print(format_quant_report(report))


def main(argv=None):
    run_tool(_quantize, parse_args(argv))


if __name__ == '__main__':
    main()
