"""What the detection and segmentation demos share: progress lines, the
train -> evaluate -> evaluate fused sequence, and the timing summary."""
import argparse
import os
import os.path as osp
import shutil
import sys
import time
from typing import Callable, Dict, Tuple

import torch


def stage(msg: str) -> None:
    print(f'\n=== {msg}', flush=True)


def train_and_evaluate(config: str, name: str, work_dir: str, options: dict,
                       timings: Dict[str, float], first: int,
                       total: int) -> Tuple[str, dict, dict]:
    """Train ``config`` from scratch, evaluate it, then evaluate its fused
    copy (``tools/test.py --deploy``); stages ``first``..``first + 2`` of
    ``total``. Returns the checkpoint and both metric dicts."""
    from mobileone_mm.engine.launch import test, train

    stage(f'{first}/{total} train {name} from scratch ({config})')
    t = time.time()
    train_dir = osp.join(work_dir, 'train')
    shutil.rmtree(train_dir, ignore_errors=True)
    runner = train(config, work_dir=train_dir, cfg_options=options)
    checkpoint = osp.join(train_dir, f'epoch_{runner.max_epochs}.pth')
    timings['train'] = time.time() - t

    stage(f'{first + 1}/{total} evaluate the trained (unfused) model on the '
          'held-out split')
    t = time.time()
    unfused = test(config, checkpoint, work_dir=osp.join(work_dir, 'test'),
                   cfg_options=options)
    timings['eval'] = time.time() - t

    stage(f'{first + 2}/{total} fuse the branches (switch_to_deploy) and '
          'evaluate again')
    t = time.time()
    fused = test(config, checkpoint, work_dir=osp.join(work_dir, 'test_fused'),
                 deploy=True, cfg_options=options)
    timings['eval_fused'] = time.time() - t
    return checkpoint, unfused, fused


def print_timings(timings: Dict[str, float]) -> None:
    stage('summary')
    print(f'machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads')
    for key, value in timings.items():
        print(f'  {key:11s} {value / 60:5.1f} min')


def main(run: Callable[..., dict], doc: str, work_dir: str, data_root: str,
         metric: str) -> None:
    """The command line of tools/demo.py and tools/demo_seg.py: run the demo
    and exit non-zero when the fused model's ``metric`` differs."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument('--work-dir', default=work_dir)
    parser.add_argument('--data-root', default=data_root)
    parser.add_argument('--num-train', type=int, default=800)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    summary = run(args.work_dir, args.data_root, args.num_train, args.num_val,
                  args.seed)
    if summary[f'{metric}_fused'] != summary[f'{metric}_unfused']:
        sys.exit(f'error: fused and unfused {metric} differ')
