"""config_path: shipped configs found from the package, from any folder."""
import os.path as osp

import pytest

from mobileone_mm.utils.paths import config_path

from ..conftest import ROOT


def test_finds_a_shipped_config_from_another_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = config_path('detection/ssdlite_mobileone_s0.py')
    assert osp.isabs(path) and osp.isfile(path)
    assert osp.samefile(path, ROOT / 'configs' / 'detection' / 'ssdlite_mobileone_s0.py')


def test_unknown_name_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no config 'detection/nope.py'"):
        config_path('detection/nope.py')
