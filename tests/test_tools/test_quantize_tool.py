"""tools/quantize.py: arguments reach the package, the table is printed, the
report written; bad input exits with one line naming the fix."""
import importlib.util
import json

import pytest

from ..conftest import ROOT
from ..test_deploy.test_quantization.quant_cases import ARCH, CLS_CFG

TOOL = ROOT / 'tools' / 'quantize.py'


def _tool():
    spec = importlib.util.spec_from_file_location('quantize_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return _tool()


def _tiny_config(tmp_path):
    """The ImageNet classifier with a tiny MobileOne at 64 px and no data
    (a config file: --cfg-options cannot replace the arch name by a dict)."""
    path = tmp_path / 'tiny_cls.py'
    path.write_text(
        f"_base_ = ['{CLS_CFG}']\n"
        f"model = dict(backbone=dict(arch=dict(_delete_=True, **{ARCH!r})),\n"
        f"             head=dict(in_channels=32, num_classes=10),\n"
        f"             data_preprocessor=dict(num_classes=10))\n"
        f"input_size = 64\n"
        f"train_dataloader = dict(dataset=dict(\n"
        f"    data_root='{tmp_path}/none'))\n")
    return path


def test_latency_only_run_prints_the_table(tool, tmp_path, capsys):
    work = tmp_path / 'work'
    tool.main([str(_tiny_config(tmp_path)), '--work-dir', str(work),
               '--backend', 'onnxruntime', '--calib-images', '2',
               '--runs', '3', '--per-tensor', '--threads', '1'])
    out, err = capsys.readouterr()
    assert 'WARNING' in err and 'RANDOM' in err
    lines = out.splitlines()
    assert any(line.startswith('ORT int8') for line in lines)
    assert 'per-tensor' in out and 'RANDOM' in out
    report = json.loads((work / 'quant_report.json').read_text())
    assert report['calibration']['per_channel'] is False
    assert report['calibration']['images'] == 2
    assert report['int8']['latency_ms']['runs'] == 3
    assert (work / 'model_int8.onnx').is_file()


def test_coreml_run_writes_the_compressed_packages(tool, tmp_path, capsys):
    work = tmp_path / 'work'
    tool.main([str(_tiny_config(tmp_path)), '--work-dir', str(work),
               '--backend', 'coreml', '--calib-images', '2'])
    out, err = capsys.readouterr()
    assert err.count('RANDOM') == 1  # calibration for a8w8, announced once
    report = json.loads((work / 'quant_report.json').read_text())
    coreml = report['coreml']
    for name in ('fp16', 'w8', 'w6', 'w4'):
        assert coreml[name]['size_mb'] > 0 and coreml[name]['metric'] is None
        assert (work / 'coreml' / f'model_{name}.mlpackage').is_dir()
        assert any(line.startswith(f'Core ML {name} ')
                   for line in out.splitlines())
    assert coreml['a8w8']['calibration']['source'] == 'random'
    assert coreml['a8w8']['calibration']['images'] == 2
    assert report['int8']['skipped'] == 'onnxruntime not requested (--backend)'


@pytest.mark.parametrize('args,match', [
    (['no/such/config.py'], 'config not found'),
    ([str(CLS_CFG), '--method', 'kl'], 'unsupported --method'),
    ([str(CLS_CFG), '--backend', 'tflite'], 'unsupported backend'),
    ([str(CLS_CFG), '--calib-images', '0'], '--calib-images must be >= 1'),
    ([str(CLS_CFG), 'no/such.pth', '--backend', 'onnxruntime',
      '--cfg-options', 'model.backbone.init_cfg=None'],
     'checkpoint not found'),
])
def test_bad_input_exits_with_the_fix(tool, tmp_path, args, match):
    with pytest.raises(SystemExit) as exc:
        tool.main(args + ['--work-dir', str(tmp_path)])
    assert str(exc.value.code).startswith('error: ')
    assert match in str(exc.value.code)
    assert not (tmp_path / 'quant_report.json').exists()
