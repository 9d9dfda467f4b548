"""count_params / count_macs (mobileone_mm/deploy/complexity.py)."""
import torch.nn as nn

from mobileone_mm import reparameterize
from mobileone_mm.deploy.complexity import count_macs, count_params
from mobileone_mm.models import LinearClassifier, MobileOne


def test_counts_of_a_conv_are_its_formula():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=True)
    assert count_params(conv) == 8 * 3 * 9 + 8
    # one MAC per weight per output pixel (fvcore counts no bias adds)
    assert count_macs(conv, (1, 3, 16, 16)) == 8 * 3 * 9 * 16 * 16


def test_fused_s0_classifier_has_the_official_figures():
    model = LinearClassifier(MobileOne('s0')).eval()
    fused = reparameterize(model)
    assert count_params(fused) == 2078504  # ml-mobileone, paper Table 8: 2.1 M
    assert round(count_macs(fused, (1, 3, 224, 224)) / 1e6, 1) == 275.1
    assert fused.training is False and not model.backbone.is_fused
    model.train()
    count_macs(model, (1, 3, 64, 64))
    assert model.training  # the count leaves the model's mode as it was
