"""One ``tools/analysis/benchmark.py --quick --ablation --in-process`` run
shared by the tests of every benchmark module (all models in this process:
a fresh process per model would add ~6 s of imports for each of its ten
models; test_driver.py runs the isolated mode on two)."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_tool', ROOT / 'tools' / 'analysis' / 'benchmark.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def quick(tmp_path_factory):
    """(out_dir, report) of a --quick --ablation --in-process run, 2 runs,
    one thread."""
    out = tmp_path_factory.mktemp('bench')
    threads = torch.get_num_threads()
    try:
        load_tool().main(['--quick', '--ablation', '--runs', '2', '--threads', '1',
                          '--in-process', '--out-dir', str(out)])
    finally:
        torch.set_num_threads(threads)
    return out, json.loads((out / 'benchmark.json').read_text())

