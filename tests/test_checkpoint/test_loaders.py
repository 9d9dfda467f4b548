"""mmengine's checkpoint loaders as mobileone_mm replaces them: every
mmengine load of a local file or http(s) URL reads it as data, so a
checkpoint whose unpickling would run code is refused, naming the file."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.runner import CheckpointLoader, load_checkpoint

from mobileone_mm.checkpoint import (ConversionError, load_from_http,
                                     load_from_local, read_state_dict)
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError

from ..test_security.payload import PAYLOADS, code_checkpoint


def test_mmengine_dispatches_to_ours():
    assert CheckpointLoader._get_checkpoint_loader('a/b.pth') is load_from_local
    for url in ('http://x/a.pth', 'https://x/a.pth'):
        assert CheckpointLoader._get_checkpoint_loader(url) is load_from_http


@pytest.mark.parametrize('payload', sorted(PAYLOADS))
def test_mmengine_load_checkpoint_refuses_code(payload, tmp_path):
    marker = tmp_path / 'MARKER'
    path = code_checkpoint(tmp_path / 'model.pth', marker,
                           {'weight': torch.zeros(1, 1)}, payload)
    with pytest.raises(ConversionError, match=f'{path}: cannot read as a '
                       'checkpoint .*which is code, not data') as err:
        load_checkpoint(nn.Linear(1, 1, bias=False), str(path))
    assert isinstance(err.value, UserError)
    assert not marker.exists()


def test_data_only_checkpoints_still_load(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'weight': torch.full((1, 1), 2.)},
                'meta': {'epoch': 1, 'seed': np.int64(3),
                         'hist': np.arange(3)}}, path)
    model = nn.Linear(1, 1, bias=False)
    checkpoint = load_checkpoint(model, str(path), strict=True)
    assert checkpoint['meta']['seed'] == 3 and model.weight.item() == 2
    with pytest.raises(FileNotFoundError):  # mmengine's error, as before
        load_checkpoint(model, str(tmp_path / 'missing.pth'))


def test_urls_are_read_as_data(tmp_path, monkeypatch):
    """URLs go through mmengine's loader to ours; the download itself is
    faked with a local file."""
    calls = []

    def fake_download(url, model_dir=None, map_location=None, progress=True,
                      weights_only=False):
        calls.append((url, weights_only))
        return torch.load(tmp_path / url.rsplit('/', 1)[-1],
                          map_location=map_location, weights_only=weights_only)

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', fake_download)
    torch.manual_seed(0)
    src = MobileOne('s0')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               src.state_dict().items()}}, tmp_path / 's0.pth')
    url = 'https://example.invalid/s0.pth'
    model = MobileOne('s0', init_cfg=dict(type='Pretrained', checkpoint=url))
    model.init_weights()
    torch.testing.assert_close(model.stage4[1].conv_kxk[0].conv.weight,
                               src.stage4[1].conv_kxk[0].conv.weight)
    assert calls == [(url, True)]

    marker = tmp_path / 'MARKER'
    code_checkpoint(tmp_path / 'evil.pth', marker, src.state_dict())
    with pytest.raises(ConversionError,
                       match='https://example.invalid/evil.pth: cannot read'):
        read_state_dict('https://example.invalid/evil.pth')
    assert not marker.exists()


def test_real_download_path_on_a_file_url(tmp_path):
    """torch.hub's own download (here of a file:// URL) with our reading."""
    torch.save({'state_dict': {'a': torch.ones(1)}}, tmp_path / 'good.pth')
    hub = tmp_path / 'hub'
    loaded = load_from_http(f'file://{tmp_path}/good.pth', model_dir=str(hub),
                            progress=False)
    assert loaded['state_dict']['a'].item() == 1
    marker = tmp_path / 'MARKER'
    code_checkpoint(tmp_path / 'evil.pth', marker, {'a': torch.ones(1)})
    with pytest.raises(ConversionError, match='which is code, not data'):
        load_from_http(f'file://{tmp_path}/evil.pth', model_dir=str(hub),
                       progress=False)
    assert not marker.exists()
