"""Every checkpoint scheme mmengine registers reads its file as data once
``mobileone_mm`` is imported: a crafted ``__reduce__`` checkpoint served from
a local HTTP server (127.0.0.1) behind each model-zoo scheme, and handed over
by fakes of pavi's model cloud and of object storage, is refused and its
command never runs; a data-only file behind the same URLs loads."""
import sys
import types

import pytest
import torch
from mmengine.runner import CheckpointLoader, load_checkpoint
from mmengine.runner import checkpoint as mmengine_checkpoint

from mobileone_mm.checkpoint import ConversionError, loaders

from ..test_security.payload import code_checkpoint
from .http_server import server  # noqa: F401  (a fixture)


def _files(root, marker):
    """A good checkpoint and one whose unpickling would create ``marker``
    (``backbone.weight`` for mmcls://, which keeps only the backbone)."""
    torch.save({'state_dict': {'weight': torch.full((1, 1), 3.),
                               'backbone.weight': torch.full((1, 1), 3.)}},
               root / 'good.pth')
    code_checkpoint(root / 'evil.pth', marker, {'weight': torch.zeros(1, 1)})


# scheme -> the mmengine URL table it reads, patched to point at the server
ZOO = {
    'torchvision://': 'get_torchvision_models',
    'modelzoo://': 'get_torchvision_models',
    'open-mmlab://': 'get_external_models',
    'openmmlab://': 'get_external_models',
    'mmcls://': 'get_mmcls_models',
}


def test_every_registered_scheme_is_ours():
    """Fails when mmengine registers a scheme this package does not serve."""
    assert CheckpointLoader._schemes  # mmengine's table as it stands now
    for prefix, loader in CheckpointLoader._schemes.items():
        assert loader.__module__ == loaders.__name__, prefix
        assert loaders.SCHEMES[prefix] is loader, prefix
    assert set(loaders.SCHEMES) == set(CheckpointLoader._schemes)


@pytest.mark.parametrize('scheme', sorted(ZOO))
def test_model_zoo_schemes_read_as_data(scheme, server, tmp_path, monkeypatch):
    root, base = server
    marker = tmp_path / 'MARKER'
    _files(root, marker)
    table = {'good': f'{base}/good.pth', 'evil': f'{base}/evil.pth'}
    monkeypatch.setattr(mmengine_checkpoint, ZOO[scheme], lambda: table)
    monkeypatch.setattr(mmengine_checkpoint, 'get_deprecated_model_names',
                        lambda: {})
    with pytest.raises(ConversionError, match='evil.pth: cannot read as a '
                       'checkpoint .*which is code, not data'):
        load_checkpoint(torch.nn.Linear(1, 1, bias=False), f'{scheme}evil')
    assert not marker.exists()
    good = CheckpointLoader.load_checkpoint(f'{scheme}good')
    assert good['state_dict']['weight'].item() == 3
    with pytest.raises(ConversionError, match='no .*named \'absent\''):
        CheckpointLoader.load_checkpoint(f'{scheme}absent')


def test_open_mmlab_local_entry_reads_as_data(tmp_path, monkeypatch):
    """open-mmlab:// names a file under $MMENGINE_HOME when its table entry
    is not a URL; mmengine reads that one with plain torch.load."""
    home = tmp_path / 'home'
    home.mkdir()
    marker = tmp_path / 'MARKER'
    _files(home, marker)
    monkeypatch.setattr(mmengine_checkpoint, '_get_mmengine_home',
                        lambda: str(home))
    monkeypatch.setattr(mmengine_checkpoint, 'get_external_models',
                        lambda: {'evil': 'evil.pth', 'good': 'good.pth'})
    monkeypatch.setattr(mmengine_checkpoint, 'get_deprecated_model_names',
                        lambda: {})
    with pytest.raises(ConversionError, match='which is code, not data'):
        CheckpointLoader.load_checkpoint('open-mmlab://evil')
    assert not marker.exists()
    good = CheckpointLoader.load_checkpoint('open-mmlab://good')
    assert good['state_dict']['weight'].item() == 3


def test_pavi_reads_as_data(tmp_path, monkeypatch):
    marker = tmp_path / 'MARKER'
    _files(tmp_path, marker)

    class Model:
        def __init__(self, name):
            self.name = name

        def download(self, dst):
            with open(dst, 'wb') as f:
                f.write((tmp_path / self.name).read_bytes())

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda p: Model(p))
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    with pytest.raises(ConversionError,
                       match='^pavi://evil.pth: cannot read .*code, not data'):
        CheckpointLoader.load_checkpoint('pavi://evil.pth')
    assert not marker.exists()
    good = CheckpointLoader.load_checkpoint('pavi://good.pth')
    assert good['state_dict']['weight'].item() == 3


@pytest.mark.parametrize('url', ['s3://bucket/evil.pth',
                                 'cluster:petrel://bucket/evil.pth'])
def test_object_storage_reads_as_data(url, tmp_path, monkeypatch):
    marker = tmp_path / 'MARKER'
    _files(tmp_path, marker)
    storage = types.SimpleNamespace(
        get=lambda name: (tmp_path / name.rsplit('/', 1)[-1]).read_bytes())
    monkeypatch.setattr(mmengine_checkpoint, 'get_file_backend',
                        lambda name, backend_args: storage)
    with pytest.raises(ConversionError, match='code, not data'):
        CheckpointLoader.load_checkpoint(url)
    assert not marker.exists()
    good = CheckpointLoader.load_checkpoint(url.replace('evil', 'good'))
    assert good['state_dict']['weight'].item() == 3
