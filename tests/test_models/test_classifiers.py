"""LinearClassifier: backbone, global average pool, linear."""
import pytest
import torch

from mobileone_mm.models import LinearClassifier, MobileOne


@pytest.mark.parametrize('arch, width', [
    ('s0', 1024),
    (dict(num_blocks=(1, 1, 1, 1), widths=(8, 16, 24, 40),
          num_conv_branches=(1, 1, 1, 1), num_se_blocks=(0, 0, 0, 0)), 40),
])
def test_output_shape_and_in_features(arch, width):
    backbone = MobileOne(arch)
    model = LinearClassifier(backbone, num_classes=7).eval()
    assert model.fc.in_features == backbone.out_channels[-1] == width
    assert model.fc.out_features == 7
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        pooled = backbone(x)[-1].mean((2, 3))
    assert out.shape == (2, 7)
    torch.testing.assert_close(out, model.fc(pooled))
