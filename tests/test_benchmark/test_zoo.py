"""The benchmark's models: names, builders and the paper's top-1."""
import pytest
import torch

from mobileone_mm.benchmark import zoo
from mobileone_mm.deploy.complexity import count_params
from mobileone_mm.deploy.fusion import count_unfused


def test_available_models_lists_mobileone_and_installed_baselines():
    names = zoo.available_models()
    assert names[:10] == [f'mobileone_{a}{s}' for a in zoo.ARCHS
                          for s in ('', '_fused')]
    assert set(names[10:]) <= set(zoo.BASELINES)
    assert set(zoo.QUICK_MODELS) <= set(names)
    # every model has the paper's top-1
    assert all(zoo.top1(name) is not None for name in names)


def test_build_fused_and_train_time_s0():
    torch.manual_seed(0)
    fused, train = zoo.build('mobileone_s0_fused'), zoo.build('mobileone_s0')
    assert not fused.training and not train.training
    assert count_unfused(fused) == 0 and count_unfused(train) > 0
    # the official classifier's figure (ml-mobileone): 2.078 M params
    assert count_params(fused) == pytest.approx(2.078e6, rel=1e-3)
    assert fused(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


def test_build_a_baseline_from_mmpretrain():
    model = zoo.build('mobilenet_v2_1.0')
    assert not model.training
    assert count_params(model) == pytest.approx(3.5e6, rel=0.02)


@pytest.mark.parametrize('name', ['resnet50', 'mobileone_s9', 'no_such_model'])
def test_build_unknown_name_is_a_key_error(name):
    with pytest.raises(KeyError):
        zoo.build(name)


def test_top1_of_fused_model_is_that_of_its_train_time_form():
    assert zoo.top1('mobileone_s3_fused') == zoo.top1('mobileone_s3') == 78.1
    assert zoo.top1('mobilenet_v2_1.0') == 72.0
    assert zoo.top1('net30_relu') is None
