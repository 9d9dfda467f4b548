import pytest


@pytest.fixture(scope='session')
def imagenet_root(tmp_path_factory):
    """A tiny data set in the ImageNet layout: 8 train + 4 val images."""
    from mobileone_mm.datasets import generate_imagenet_tiny
    root = tmp_path_factory.mktemp('imagenet_tiny')
    generate_imagenet_tiny(str(root), num_train=8, num_val=4, size=64, seed=0)
    return root
