"""Parameters and MACs of a config's model, as OpenMMLab's get_flops tools
report them (mmengine's counter, the fvcore rules the paper used).

    python tools/analysis/get_flops.py CONFIG [--shape H W] [--unfused]
        [--cfg-options KEY=VALUE ...]

Counts the network as it runs at inference: fused (``--unfused``: the
training-time branches), without post-processing and without a segmentor's
training-only auxiliary head, at the config's input size (224 for
classification, 320 for SSDLite, 512 for DeepLabV3; ``--shape`` overrides),
batch 1. The model zoo's params and MACs (configs/*/README.md,
configs/*/metafile.yml) are this tool's output.
"""
import argparse

from mobileone_mm.deploy.complexity import config_complexity
from mobileone_mm.engine.launch import add_cfg_options, run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width (default: the '
                        "config's input size)")
    parser.add_argument('--unfused', action='store_true',
                        help='count the training-time (unfused) network')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def _report(args) -> None:
    shape = (1, 3, *args.shape) if args.shape else None
    result = config_complexity(args.config, shape, fused=not args.unfused,
                               cfg_options=args.cfg_options)
    form = 'fused' if result['fused'] else 'unfused'
    print(f"{result['config']}  input {tuple(result['input_shape'])}  {form}\n"
          f"params: {result['params']:,} ({result['params'] / 1e6:.2f} M)\n"
          f"MACs:   {result['macs']:,} ({result['macs'] / 1e9:.2f} G)")


def main(argv=None):
    run_tool(_report, parse_args(argv))


if __name__ == '__main__':
    main()
