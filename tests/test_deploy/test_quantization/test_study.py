"""The int8 accuracy study (mobileone_mm/benchmark/quant_accuracy.py): every
variant is a real int8 model, all are scored in one pass, drops are the
differences of those scores, and bad input is refused."""
import json

import pytest

from mobileone_mm.deploy.quantization.study import (RESULT_NAME, format_study,
                                                   quant_study, variant_name)
from mobileone_mm.deploy.quantization.onnxruntime_int8 import count_quantized_ops
from mobileone_mm.utils.errors import UserError

from .quant_cases import DET_CFG, det_options, save_checkpoint


@pytest.fixture(scope='module')
def det_checkpoint(shapes_root, tmp_path_factory):
    return save_checkpoint(DET_CFG, det_options(shapes_root),
                           tmp_path_factory.mktemp('ckpt') / 'det.pth')


def test_every_variant_is_int8_and_scored_in_one_pass(shapes_root,
                                                       det_checkpoint,
                                                       tmp_path):
    result = quant_study(str(DET_CFG), det_checkpoint, str(tmp_path),
                         methods=('minmax', ), calib_images=4,
                         snr_images=1, cfg_options=det_options(shapes_root),
                         verbose=False)
    key = result['metric_key']
    assert key == 'coco/bbox_mAP'
    # ONNX Runtime fp32 scores what PyTorch scores: the pipeline is sound
    assert result['fp32'][key] == pytest.approx(result['pytorch'][key],
                                                abs=1e-6)
    names = {variant_name(g, 'minmax') for g in ('per_tensor', 'per_channel')}
    assert set(result['int8']) == names
    for name, row in result['int8'].items():
        ops = count_quantized_ops(str(tmp_path / f'{name}.onnx'))
        assert ops.get('QuantizeLinear', 0) > 0, ops
        assert row['drop'] == pytest.approx(result['fp32'][key]
                                            - row['metric'][key])
    assert result['calibration']['images'] == 4
    assert result['calibration']['source'] == 'dataset'
    worst = result['worst_layers'][variant_name('per_channel', 'minmax')]
    assert worst and all('snr_db' in w for w in worst)
    saved = json.loads((tmp_path / RESULT_NAME).read_text())
    assert saved['int8'].keys() == result['int8'].keys()
    table = format_study(result)
    assert all(name in table for name in names)
    assert 'ONNX Runtime fp32' in table


def test_needs_a_checkpoint_and_known_variants(tmp_path):
    with pytest.raises(UserError, match='needs a trained checkpoint'):
        quant_study(str(DET_CFG), None, str(tmp_path), verbose=False)
    with pytest.raises(UserError, match='unknown kmeans'):
        quant_study(str(DET_CFG), 'x.pth', str(tmp_path),
                    methods=('kmeans', ), verbose=False)
