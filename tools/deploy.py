"""Fuse a model, export it to ONNX Runtime, Core ML and ncnn, check and time it.

    python tools/deploy.py CONFIG [CHECKPOINT] --work-dir DIR
        [--backends onnxruntime coreml ncnn] [--runs N] [--threads 1 2]
        [--input-size H W] [--full-model]
        [--precision fp32|fp16] [--target iOS15..iOS18]
        [--compute-units all|cpu_and_ne|cpu_only|cpu_and_gpu]

Exports the full MobileOne backbone, checks fused vs unfused (per branch) and
every backend against PyTorch, reads each exported program's operations (a
fused backbone must be a plain chain of convs), times the backends side by
side with the paper's protocol (Sec. 3.5) at each thread count and writes
DIR/report.json. With ``--full-model`` also the whole model, image in: a
detector with mmdet's anchors and box decoding (in Core ML a pipeline with
Core ML's own NMS, in ncnn with ncnn's DetectionOutput), a segmentor with
its class map, checked against mmdet's/mmseg's predictions; a classifier
without post-processing. ``--backends onnx`` is the old name of
onnxruntime. Exits non-zero on bad input or when a check fails.
"""
import argparse

from mobileone_mm.deploy import DeployCheckFailed, deploy, format_report
from mobileone_mm.deploy.backends import BACKEND_NAMES
from mobileone_mm.deploy.backends.coreml import (COMPUTE_UNITS, PRECISIONS,
                                                 TARGETS)
from mobileone_mm.deploy.export import DeployOptions
from mobileone_mm.engine.launch import add_output_args, run_tool
from mobileone_mm.utils.errors import UserError

CORE_ML_CHOICES = (
    ('--precision', 'Core ML compute precision', PRECISIONS),
    ('--target', 'Core ML minimum deployment target', TARGETS),
    ('--compute-units', 'Core ML compute units for timing on macOS',
     COMPUTE_UNITS))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='trained weights; random weights when omitted')
    add_output_args(parser, 'output folder (default '
                    'work_dirs/deploy/<config name>)')
    parser.add_argument('--backends', nargs='+', default=list(BACKEND_NAMES),
                        help=f'any of: {" ".join(BACKEND_NAMES)} (PyTorch is '
                        'always timed)')
    parser.add_argument('--runs', type=int, default=DeployOptions.runs,
                        help='timed runs after one warm-up (paper: 1000), '
                        'per backend and thread count')
    parser.add_argument('--threads', nargs='+', type=int,
                        default=list(DeployOptions.threads),
                        help='CPU thread counts to time every backend with')
    parser.add_argument('--input-size', nargs=2, type=int, metavar=('H', 'W'),
                        help='default: the config\'s input size')
    parser.add_argument('--full-model', action='store_true',
                        help='also export the whole model: detectors with '
                        'box decoding (and NMS in Core ML and ncnn), '
                        'segmentors with their class map, both checked '
                        'against mmdet/mmseg; classifiers without '
                        'post-processing')
    for flag, what, allowed in CORE_ML_CHOICES:
        default = getattr(DeployOptions, flag[2:].replace('-', '_'))
        parser.add_argument(flag, default=default,
                            help=f'{what}: {", ".join(allowed)}')
    return parser.parse_args(argv)


def _deploy(args) -> None:
    try:
        report = deploy(args.config, args.checkpoint, work_dir=args.work_dir,
                        backends=args.backends, runs=args.runs,
                        input_size=args.input_size,
                        full_model=args.full_model, precision=args.precision,
                        target=args.target, compute_units=args.compute_units,
                        cfg_options=args.cfg_options, threads=args.threads)
    except DeployCheckFailed as err:
        print(format_report(err.report))
        raise UserError(str(err))
    print(format_report(report))


def main(argv=None):
    run_tool(_deploy, parse_args(argv))


if __name__ == '__main__':
    main()
