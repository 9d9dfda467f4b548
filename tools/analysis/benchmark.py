"""Reproduce the paper's latency analysis on this machine.

    python tools/analysis/benchmark.py [--out-dir DIR] [--runs N]
        [--models NAME ...] [--ablation] [--threads N] [--in-process] [--quick]
        [--int8 [--int8-threads N ...]] [--ncnn]
    python tools/analysis/benchmark.py --training [--runs N] [--threads N]
        [--extras channels_last compile]

MobileOne S0-S4 (train-time and fused) and the efficient backbones that the
installed mmpretrain ships, as 1000-class classifiers, batch 1, fp32,
224x224, in PyTorch eager and ONNX Runtime (paper Sec. 3.5 protocol); params,
MACs, the Spearman correlations of Table 1a, a latency-vs-MACs plot with the
paper's top-1, ``--ablation`` for Tables 3 and 1b, and the goals as measured
ratios with PASS/FAIL. Writes DIR/benchmark.json and DIR/latency_vs_macs.png.
``--int8`` adds int8 ONNX Runtime rows (fused S0-S4 and MobileNetV2, calibrated
on random-normal input: latency only), fp32 and int8 side by side with 1 and 2
threads, and the int8 goal (fused S0 int8 >= 1.5x faster than fp32).
``--ncnn`` adds ncnn rows: the same models in PyTorch, ONNX Runtime and ncnn
(fp32) side by side with 1 and 2 threads (an x86 proxy of a phone).
``--training`` instead times the training step and the unfused eval forward
with the per-branch and the fast branch formulations (S0, S2; batch 32 at 224
and 12 at 128) and writes DIR/training.json.
"""
import argparse
import json
import os

from mobileone_mm import benchmark
from mobileone_mm.engine.launch import run_tool
from mobileone_mm.utils.errors import UserError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    parser.add_argument('--runs', type=int, default=None,
                        help='timed runs per model after one warm-up '
                        '(default 1000 as the paper, 5 with --quick)')
    parser.add_argument('--models', nargs='+', default=None,
                        help='default: all available; names: '
                        + ' '.join(benchmark.available_models()))
    parser.add_argument('--ablation', action='store_true',
                        help='also Table 3 (activations) and Table 1b (SE, '
                        'skip connections) on a 30-layer conv net')
    parser.add_argument('--threads', type=int, default=0,
                        help='CPU threads for PyTorch and ONNX Runtime '
                        '(default 0: each library\'s own default)')
    parser.add_argument('--in-process', action='store_true',
                        help='keep all models in this process instead of '
                        'each in its own fresh process (about 0.5 GB each): '
                        'less memory, but one model\'s allocations can '
                        'change another\'s time')
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: ' + ', '.join(benchmark.QUICK_MODELS)
                        + ', 5 runs, ablation at 64x64')
    parser.add_argument('--int8', action='store_true',
                        help='also int8 ONNX Runtime rows of '
                        + ' '.join(benchmark.INT8_MODELS) + ' (those of '
                        '--models), timed side by side with fp32, and the '
                        'int8 goal; calibrated on random-normal input '
                        '(latency only)')
    parser.add_argument('--int8-threads', type=int, nargs='+', default=None,
                        metavar='N', help='with --int8: the ONNX Runtime '
                        'thread counts of the int8 rows (default: '
                        + ' '.join(map(str, benchmark.INT8_THREADS)) + ')')
    parser.add_argument('--ncnn', action='store_true',
                        help='also ncnn rows of ' + ' '.join(
                            benchmark.NCNN_MODELS) + ' (those of --models): '
                        'PyTorch, ONNX Runtime and ncnn side by side with 1 '
                        'and 2 threads')
    parser.add_argument('--training', action='store_true',
                        help='time the training step and unfused eval of the '
                        'per-branch and fast branch formulations instead')
    parser.add_argument('--extras', nargs='*', default=[],
                        choices=benchmark.training.EXTRAS,
                        help='with --training: also time the fast form with '
                        'these (channels_last, torch.compile)')
    return parser.parse_args(argv)


def training_main(args) -> None:
    if args.runs is not None and args.runs < 1:
        raise UserError('--runs must be at least 1')
    report = benchmark.training.run_training(
        runs=args.runs or 6, threads=args.threads or 2, extras=args.extras)
    print(benchmark.training.format_training(report))
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, 'training.json')
    with open(path, 'w') as f:
        json.dump(report, f, indent=1)
    print(f'wrote {path}')


def _benchmark(args) -> None:
    if args.training:
        if args.int8 or args.int8_threads:
            raise UserError('--int8 does not apply to --training')
        if args.ncnn:
            raise UserError('--ncnn does not apply to --training')
        return training_main(args)
    available = benchmark.available_models()
    models = args.models or (list(benchmark.QUICK_MODELS) if args.quick
                             else available)
    runs = args.runs if args.runs is not None else (5 if args.quick else 1000)
    unknown = [m for m in models if m not in available]
    if unknown:
        raise UserError(f'unknown model(s) {" ".join(unknown)}; choose '
                        f'from: {" ".join(available)}')
    if runs < 1:
        raise UserError('--runs must be at least 1')
    if args.threads < 0:
        raise UserError('--threads must be 0 (library default) or more')
    if args.int8_threads is not None and not args.int8:
        raise UserError('--int8-threads needs --int8')
    report = benchmark.run(models, runs, args.out_dir,
                           ablation=args.ablation,
                           ablation_size=64 if args.quick else 224,
                           threads=args.threads,
                           isolate=not args.in_process, int8=args.int8,
                           int8_threads=tuple(args.int8_threads or
                                              benchmark.INT8_THREADS),
                           ncnn=args.ncnn)
    print(benchmark.format_report(report))
    print(f'wrote {args.out_dir}/benchmark.json')


def main(argv=None):
    run_tool(_benchmark, parse_args(argv))


if __name__ == '__main__':
    main()
