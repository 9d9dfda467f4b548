"""deploy() end to end and tools/deploy.py: fuse, export to Core ML and ONNX,
check, time, report (mobileone_mm/deploy/export.py)."""
import copy
import json
import platform
import runpy
import subprocess
import sys

import pytest
import torch

from mobileone_mm.apis import build_model, load_config
from mobileone_mm.deploy import export
from mobileone_mm.deploy.export import DeployCheckFailed, DeployOptions, deploy
from mobileone_mm.models import MobileOneBlock
from mobileone_mm.utils.errors import UserError

from ..conftest import ROOT, subprocess_env
from ..utils import run_cli
from .conftest import (CLS_S0, CLS_S4, DET_S0, DET_S1, S0_BLOCKS, S4_CONVS,
                       SEG_S0, check_latency, code_running_checkpoint,
                       trained_like_checkpoint)

TOOL = ROOT / 'tools' / 'deploy.py'
# The whole SSDLite-S0 without NMS: the 43 backbone convs plus the extra
# levels' and the SSDLite head's depthwise-separable convs (configs/detection/README.md).
SSDLITE_S0_CONVS = 79
# The whole DeepLabV3-S0 without post-processing: the 43 backbone convs plus
# the decode head's (ASPP image pool, 1x1 and three dilated 3x3 branches,
# bottleneck, classifier); the auxiliary head does not run in mode='tensor'.
DEEPLABV3_S0_CONVS = S0_BLOCKS + 7


def run_tool(*args, cwd=ROOT):
    """tools/deploy.py through its command line, in this process."""
    return run_cli(TOOL, *args, cwd=cwd)


def check_backbone_report(report, work_dir, shape, runs):
    """Fields the report must have, with values that prove the export."""
    assert report['input_shape'] == list(shape)
    assert report['fusion']['unfused_blocks'] == 0
    assert report['fusion']['fused_blocks'] == S0_BLOCKS
    assert report['fusion']['max_abs_diff'] <= 1e-4
    assert report['branch_free'] is True and report['checks_passed'] is True
    assert report['failures'] == []

    coreml = report['coreml']
    assert (work_dir / 'backbone.mlpackage').is_dir()
    assert coreml['path'] == str(work_dir / 'backbone.mlpackage')
    # a plain chain: one conv per fused block, ReLU after each, no add
    assert coreml['ops']['conv'] == S0_BLOCKS
    assert coreml['ops']['relu'] == S0_BLOCKS
    assert 'add' not in coreml['ops'] and coreml['branch_free'] is True
    if platform.system() != 'Darwin':
        assert coreml['latency_ms'] is None and coreml['max_abs_diff'] is None
        assert 'predicts only on macOS' in coreml['note']
    else:
        check_latency(coreml['latency_ms'], runs)

    onnx = report['onnxruntime']
    assert (work_dir / 'backbone.onnx').is_file()
    assert onnx['ops']['Conv'] == S0_BLOCKS and 'Add' not in onnx['ops']
    assert onnx['branch_free'] is True
    assert onnx['max_abs_diff'] <= 1e-4
    assert onnx['max_abs_output'] > 0.1  # a real signal was compared
    check_latency(onnx['latency_ms'], runs)
    for kind in ('unfused', 'fused'):
        check_latency(report['torch']['latency_ms'][kind], runs)


def test_classification_s0_backbone(tmp_path):
    ckpt = trained_like_checkpoint(CLS_S0, tmp_path / 'cls_s0.pth')
    work = tmp_path / 'work'
    proc = run_tool(CLS_S0, ckpt, '--work-dir', work, '--runs', 2,
                    '--precision', 'fp16', '--target', 'iOS16')
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((work / 'report.json').read_text())
    assert report['checkpoint'] == str(ckpt) and report['arch'] == 's0'
    assert report['notes'] == []  # trained weights: no random-weights warning
    check_backbone_report(report, work, (1, 3, 224, 224), runs=2)
    assert report['coreml']['precision'] == 'fp16'
    assert report['coreml']['minimum_deployment_target'] == 'iOS16'
    assert report['coreml']['ops']['cast'] >= 1  # fp16 program, fp32 I/O
    # the terminal table
    assert 'branch-free: 43 conv = 43 fused blocks, 0 add' in proc.stdout
    assert 'PyTorch (fused)' in proc.stdout and 'ONNX Runtime' in proc.stdout


def test_detection_s0_full_model(tmp_path):
    """No checkpoint (the config's pretrained file is absent): random weights
    with a warning; with --full-model the complete detector too (Core ML:
    the network and decoding, then Core ML's NMS; ONNX: without NMS)."""
    work = tmp_path / 'work'
    proc = run_tool(DET_S0, '--work-dir', work, '--runs', 2, '--full-model')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'warning: no checkpoint' in proc.stderr
    report = json.loads((work / 'report.json').read_text())
    assert report['checkpoint'] is None and report['notes']
    check_backbone_report(report, work, (1, 3, 320, 320), runs=2)
    assert report['coreml']['precision'] == 'fp32'
    assert 'cast' not in report['coreml']['ops']

    full = report['full_model']
    assert (work / 'model.mlpackage').is_dir() and (work / 'model.onnx').is_file()
    assert full['coreml']['ops']['conv'] == SSDLITE_S0_CONVS
    assert full['onnxruntime']['ops']['Conv'] == SSDLITE_S0_CONVS
    # COCO's 80 classes, NMS in the Core ML pipeline only
    assert full['coreml']['kind'] == 'pipeline' and full['coreml']['ok']
    assert len(full['coreml']['nms']['class_labels']) == 80
    assert 'NonMaxSuppression' not in full['onnxruntime']['ops']
    assert full['reference']['pytorch']['pre_nms']['ok']
    assert 'verified: PyTorch on' in proc.stdout
    assert full['onnxruntime']['max_abs_diff'] <= 1e-4
    check_latency(full['onnxruntime']['latency_ms'], 2)
    check_latency(full['torch']['latency_ms']['fused'], 2)


def test_segmentation_s0_dilated_backbone(tmp_path):
    """The output-stride-8 backbone (dilated stages 3-4) is a plain chain
    too; the whole DeepLabV3 (ASPP, no post-processing) exports and agrees
    with PyTorch. Smaller input than the config's 512 to keep the test short."""
    report = deploy(str(SEG_S0), None, str(tmp_path), runs=1,
                    input_size=(128, 128), full_model=True, verbose=False)
    assert report['input_shape'] == [1, 3, 128, 128]
    assert report['coreml']['ops']['conv'] == S0_BLOCKS
    assert 'add' not in report['coreml']['ops'] and report['branch_free']
    assert report['onnxruntime']['max_abs_diff'] <= 1e-4
    full = report['full_model']
    assert full['onnxruntime']['max_abs_diff'] <= 1e-4
    assert full['coreml']['ops']['conv'] == DEEPLABV3_S0_CONVS
    assert full['onnxruntime']['ops']['Conv'] == DEEPLABV3_S0_CONVS


def test_s4_backbone_chain_has_the_se_convs(tmp_path):
    report = deploy(str(CLS_S4), None, str(tmp_path), runs=1,
                    input_size=(64, 64), verbose=False)
    assert report['expected_chain'] == dict(blocks=S0_BLOCKS, se_blocks=12,
                                            convs=S4_CONVS, adds=0)
    assert report['coreml']['ops']['conv'] == S4_CONVS == 67
    assert report['onnxruntime']['ops']['Conv'] == S4_CONVS
    assert 'add' not in report['coreml']['ops']
    assert 'Add' not in report['onnxruntime']['ops']
    assert report['coreml']['chain'] == ('67 conv = 43 fused blocks + 2 x 12 '
                                         'SE, 0 add: a plain chain')
    assert report['branch_free'] and report['checks_passed']


def test_fused_config_has_no_train_time_model(tmp_path):
    """A deploy=True config builds fused: exported and timed as is, with no
    'unfused' figure that would in fact be the fused model's."""
    config = ROOT / 'configs' / 'classification' / 'mobileone_s0_in1k_deploy.py'
    report = deploy(str(config), None, str(tmp_path), backends=['onnxruntime'],
                    runs=1, input_size=(64, 64), verbose=False)
    assert any('already fused' in note for note in report['notes'])
    assert report['torch']['latency_ms']['unfused'] is None
    check_latency(report['torch']['latency_ms']['fused'], 1)
    assert report['coreml'] is None and report['onnxruntime']['ops']['Conv'] == S0_BLOCKS


def test_fused_checkpoint_is_recognised(tmp_path):
    """A fused checkpoint (reparam_conv keys) is built fused and loads
    strictly: no unfused model to time."""
    cfg = load_config(str(CLS_S0))
    cfg.model.backbone.deploy = True
    ckpt = tmp_path / 'fused.pth'
    torch.save(dict(state_dict=build_model(cfg).state_dict()), ckpt)
    report = deploy(str(CLS_S0), str(ckpt), str(tmp_path / 'work'),
                    backends=['onnxruntime'], runs=1, input_size=(64, 64),
                    verbose=False)
    assert any('already fused' in note for note in report['notes'])
    assert report['torch']['latency_ms']['unfused'] is None
    assert report['onnxruntime']['ops']['Conv'] == S0_BLOCKS


def fuse_all_but_one(model, inplace=False):
    """A broken fusion: one stage-3 block keeps its train-time branches."""
    model = model if inplace else copy.deepcopy(model)
    blocks = [m for m in model.modules() if isinstance(m, MobileOneBlock)]
    for block in blocks[:20] + blocks[21:]:
        block.switch_to_deploy()
    blocks[20].branch_impl = 'reference'
    return model


def test_unfused_fast_block_is_still_caught(tmp_path, monkeypatch):
    """Left unfused with the default branch_impl ('fast', whose eval form
    computes the fused kernel on the fly), the block still exports its
    branches (tracing and ONNX export run it per branch) and the deploy
    stops."""
    def fuse_fast(model, inplace=False):
        model = fuse_all_but_one(model, inplace)
        for m in model.modules():
            if isinstance(m, MobileOneBlock):
                m.branch_impl = 'fast'
        return model
    monkeypatch.setattr(export, 'reparameterize', fuse_fast)
    with pytest.raises(DeployCheckFailed) as info:
        deploy(str(DET_S0), None, str(tmp_path / 'work'), runs=1,
               backends=['onnxruntime'], input_size=(64, 64), verbose=False)
    report = info.value.report
    assert report['fusion']['unfused_blocks'] == 1
    assert not report['checks_passed']


def test_unfused_block_is_not_branch_free(tmp_path, monkeypatch):
    monkeypatch.setattr(export, 'reparameterize', fuse_all_but_one)
    work = tmp_path / 'work'
    with pytest.raises(DeployCheckFailed, match='not branch-free') as info:
        deploy(str(DET_S0), None, str(work), runs=1, input_size=(64, 64),
               verbose=False)
    report = info.value.report
    assert report['branch_free'] is False and not report['checks_passed']
    assert report['fusion']['unfused_blocks'] == 1
    # The unfused block is stage 2's last 1x1 block (k=4 conv branches and a
    # BN identity): 4 convs instead of 1, and 4 adds summing the 5 branches.
    assert report['coreml']['ops']['conv'] == S0_BLOCKS + 3
    assert report['coreml']['ops']['add'] == 4
    assert report['coreml']['branch_free'] is False
    assert report['onnxruntime']['ops']['Conv'] == S0_BLOCKS + 3
    assert report['onnxruntime']['ops']['Add'] == 4
    assert report['onnxruntime']['branch_free'] is False
    assert json.loads((work / 'report.json').read_text())['branch_free'] is False

    # the tool: the same failure is a one-line error and a non-zero exit
    main = runpy.run_path(str(TOOL))['main']
    with pytest.raises(SystemExit) as exit_info:
        main([str(DET_S0), '--work-dir', str(tmp_path / 'tool'), '--runs',
              '1', '--input-size', '64', '64', '--backends', 'coreml'])
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and 'not branch-free' in message
    assert '\n' not in message


def test_bad_input_is_one_line_error(tmp_path):
    """Unknown config, checkpoint of another variant, unsupported backend:
    one line on stderr, non-zero exit, nothing written."""
    s1 = tmp_path / 'ssdlite_s1.pth'
    torch.save(dict(state_dict=build_model(load_config(str(DET_S1)))
                    .state_dict()), s1)
    main = runpy.run_path(str(TOOL))['main']
    cases = [(['configs/detection/ssdlite_mobileone_s9.py'],
              'config not found: configs/detection/ssdlite_mobileone_s9.py'),
             ([str(DET_S0), str(s1)], 'does not fit the model of'),
             ([str(DET_S0), '--backends', 'onnxruntime', 'tflite'],
              "unsupported backend 'tflite': choose from onnxruntime coreml ncnn")]
    for args, expected in cases:
        with pytest.raises(SystemExit) as info:
            main([*args, '--work-dir', str(tmp_path / 'work'), '--runs', '1'])
        message = str(info.value.code)  # sys.exit(str): exit status 1
        assert message.startswith('error: ') and expected in message
        # one line, short enough for a terminal's few lines
        assert '\n' not in message and len(message) < 800
    assert not (tmp_path / 'work' / 'report.json').exists()

    # the same through a real process: exit status and stderr
    proc = subprocess.run([sys.executable, str(TOOL), *cases[2][0],
                           '--work-dir', str(tmp_path / 'work')],
                          capture_output=True, text=True, cwd=ROOT,
                          env=subprocess_env())
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f'error: {cases[2][1]}']


def test_code_running_checkpoint_is_refused(tmp_path):
    """A checkpoint is read as data: one whose unpickling would run code is
    refused, naming the file, and the code never runs."""
    marker = tmp_path / 'marker'
    ckpt = code_running_checkpoint(tmp_path / 'evil.pth', marker)
    with pytest.raises(UserError, match='evil.pth') as info:
        deploy(str(CLS_S0), str(ckpt), str(tmp_path / 'work'),
               backends=['onnxruntime'], runs=1, input_size=(64, 64), verbose=False)
    assert str(ckpt) in str(info.value)
    assert not marker.exists()
    assert not (tmp_path / 'work' / 'report.json').exists()


def test_api_rejects_bad_options():
    with pytest.raises(UserError, match='precision'):
        deploy(str(DET_S0), precision='int8', verbose=False)
    with pytest.raises(UserError, match='iOS15'):
        deploy(str(DET_S0), target='iOS14', verbose=False)


@pytest.mark.parametrize('kwargs, message', [
    (dict(backends=['tflite']), "unsupported backend 'tflite'"),
    (dict(precision='int8'), "unsupported precision 'int8'"),
    (dict(target='iOS14'), 'ML programs need iOS15+'),
    (dict(compute_units='npu'), "unsupported compute units 'npu'"),
    (dict(runs=0), '--runs must be >= 1, got 0'),
    (dict(input_size=(16, 64)), '--input-size takes H W >= 32'),
    (dict(input_size=(64, )), '--input-size takes H W >= 32'),
])
def test_options_are_validated_in_one_place(kwargs, message):
    with pytest.raises(UserError, match=message.replace('+', r'\+')):
        DeployOptions(**kwargs)


def test_options_are_normalized():
    options = DeployOptions(backends=['ONNX', 'onnxruntime', 'CoreML'], runs='3',
                            input_size=[96, 64])
    assert options.backends == ('onnxruntime', 'coreml') and options.runs == 3
    cfg = load_config(str(DET_S0))
    assert options.input_shape(cfg) == (1, 3, 96, 64)
    assert DeployOptions().input_shape(cfg) == (1, 3, 320, 320)
