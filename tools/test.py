"""Evaluate a checkpoint of a mobileone_mm config.

    python tools/test.py CONFIG CHECKPOINT [--deploy] [--out results.pkl]

``--deploy`` evaluates the re-parameterized (fused) model, as shipped. The
checkpoint must fit the config's model (keys and shapes); ``--partial-load``
lets it fit partly and prints what was not loaded.
"""
import argparse

from mobileone_mm.engine.launch import (add_common_args, parse_tool_args,
                                        run_tool, test)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_common_args(parser)
    parser.add_argument('--deploy', action='store_true',
                        help='fuse the MobileOne branches before testing')
    parser.add_argument('--out', help='dump predictions to a .pkl file')
    parser.add_argument('--show-dir', help='save drawn predictions here')
    parser.add_argument('--partial-load', action='store_true',
                        help='let the checkpoint fit the model only partly; '
                        'prints what was not loaded')
    return parse_tool_args(parser)


def main():
    args = parse_args()
    run_tool(test, args.config, args.checkpoint, work_dir=args.work_dir,
             deploy=args.deploy, out=args.out, show_dir=args.show_dir,
             cfg_options=args.cfg_options, launcher=args.launcher,
             partial_load=args.partial_load)


if __name__ == '__main__':
    main()
