"""The model zoo as mim sees it: ``mim search mobileone_mm`` (mim itself, a
real process) lists every model config of configs/{classification,
detection,segmentation} with its task, data set and metrics; ``--model``
filters by collection; the metafiles' params and MACs are what
tools/analysis/get_flops.py measures; the config READMEs' tables agree with
the metafiles.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..utils import run_cli

ROOT = Path(__file__).resolve().parents[2]
TASK_DIRS = ('classification', 'detection', 'segmentation')
CONFIGS = sorted(p for d in TASK_DIRS for p in (ROOT / 'configs' / d).glob('*.py'))


def mim_search(*args) -> dict:
    """``mim search mobileone_mm ARGS --json``, as ``{config id: fields}``."""
    out_json = subprocess.run(
        [sys.executable, '-m', 'mim', 'search', 'mobileone_mm', *args, '--json', '/dev/stdout'],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out_json.returncode == 0, out_json.stderr
    columns = json.loads(out_json.stdout[:out_json.stdout.rindex('}') + 1])
    rows = {}
    for field, values in columns.items():
        for config_id, value in values.items():
            if value is not None:
                rows.setdefault(config_id, {})[field] = value
    return rows


def metafile_models() -> dict:
    models = {}
    for d in TASK_DIRS:
        for model in yaml.safe_load((ROOT / 'configs' / d / 'metafile.yml').read_text())['Models']:
            models[model['Name']] = model
    return models


@pytest.fixture(scope='module')
def listed():
    return mim_search()


def test_mim_search_lists_every_config(listed):
    assert set(listed) == {p.stem for p in CONFIGS}
    for config_id, fields in listed.items():
        assert (ROOT / fields['config']).is_file(), fields['config']
        assert Path(fields['config']).stem == config_id
        assert fields['paper'] and fields['readme'].endswith('README.md')
        assert fields['parameters'] > 0 and fields['flops'] > 0


def test_mim_search_has_tasks_data_sets_and_metrics(listed):
    assert listed['ssdlite_mobileone_s2']['coco/paper_box_ap'] == 26.6
    assert listed['mobileone_s0_in1k']['imagenet-1k/paper_top_1_accuracy'] == 71.4
    assert listed['deeplabv3_mobileone_s4_ade20k']['ade20k/paper_miou'] == 38.2
    assert listed['ssdlite_mobileone_s0_shapes']['shapes/box_ap'] == 65.0
    assert listed['deeplabv3_mobileone_s2_voc']['training_data'] == 'pascal voc 2012 + sbd'
    tasks = {m['Results'][0]['Task'] for m in metafile_models().values() if 'Results' in m}
    assert tasks == {'Image Classification', 'Object Detection', 'Semantic Segmentation'}


def test_mim_search_filters_by_model():
    assert set(mim_search('--model', 'ssdlite')) == {
        p.stem for p in (ROOT / 'configs' / 'detection').glob('*.py')}
    assert set(mim_search('--model', 'deeplabv3')) == {
        p.stem for p in (ROOT / 'configs' / 'segmentation').glob('*.py')}


def test_the_package_ships_the_index():
    mim_dir = ROOT / 'mobileone_mm' / '.mim'
    assert (mim_dir / 'model-index.yml').resolve() == (ROOT / 'model-index.yml').resolve()
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    assert sorted(index['Import']) == [f'configs/{d}/metafile.yml' for d in TASK_DIRS]


@pytest.mark.parametrize('config', [
    'configs/classification/mobileone_s0_in1k.py',
    'configs/detection/ssdlite_mobileone_s0_shapes.py',
    'configs/segmentation/deeplabv3_mobileone_s0_shapes.py',
])
def test_metafile_counts_are_what_get_flops_measures(config):
    params, macs = counts(config)
    meta = metafile_models()[Path(config).stem]['Metadata']
    assert (meta['Parameters'], meta['FLOPs']) == (params, macs)


def counts(*args):
    out = run_cli(ROOT / 'tools' / 'analysis' / 'get_flops.py', *args, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return (int(re.search(r'params: ([\d,]+)', out.stdout)[1].replace(',', '')),
            int(re.search(r'MACs: +([\d,]+)', out.stdout)[1].replace(',', '')))


def test_get_flops_counts_the_official_s0():
    # MobileOne-S0 fused with a 1000-class head at 224 px: ml-mobileone's
    # 2,078,504 params and 275.16 M MACs (the paper's Table 8: 2.1 M, 275 M)
    config = 'configs/classification/mobileone_s0_in1k.py'
    assert counts(config) == (2_078_504, 275_160_576)
    unfused, unfused_macs = counts(config, '--unfused', '--shape', '224', '224')
    assert unfused > 2 * 2_078_504 and unfused_macs > 3 * 275_160_576  # k = 4 branches
    assert counts(config, '--shape', '112', '112')[1] < 275_160_576 / 3
    bad = run_cli(ROOT / 'tools' / 'analysis' / 'get_flops.py', 'configs/no/such.py', cwd=ROOT)
    assert bad.returncode == 1 and bad.stderr.strip() == 'error: config not found: configs/no/such.py'


def test_readme_tables_agree_with_the_metafiles():
    models = metafile_models()
    checked = 0
    for d in TASK_DIRS:
        for line in (ROOT / 'configs' / d / 'README.md').read_text().split('\n'):
            m = re.match(r'^\| `([\w-]+)\.py`[^|]*\|[^|]*\| (\d+) \| ([\d.]+) \| ([\d.]+) \|', line)
            if not m:
                continue
            meta = models[m[1]]['Metadata']
            assert meta['Input Size'].startswith(m[2] + 'x'), line
            assert float(m[3]) == round(meta['Parameters'] / 1e6, 2), line
            assert abs(float(m[4]) - meta['FLOPs'] / 1e9) < 0.0051, line
            checked += 1
    assert checked == len(CONFIGS)
