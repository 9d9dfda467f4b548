"""mmengine's checkpoint loaders for local files and http(s) URLs, replaced
by ones that read the file as data (``weights_only=True`` with the
package's allow-list).

Every checkpoint that mmengine reads goes through these once
``mobileone_mm`` is imported: the runner's ``load_from`` and ``resume``,
``load_checkpoint``, the OpenMMLab inferencers and mmdeploy's model builder.
mmengine's own loaders call ``torch.load`` with torch's default, which runs
pickled code before torch 2.6, and read URLs with
``torch.hub.load_state_dict_from_url`` at its default, full unpickling, on
every torch; here both read weights only. The model-zoo schemes
(``torchvision://``/``modelzoo://``, ``open-mmlab://``/``openmmlab://``,
``mmcls://``) and the storage schemes (``pavi://``, ``s3://``/``petrel://``)
are mmengine's functions with the same URL tables (mmengine's
``get_*_models``, looked up at call time) and ending in the two loaders
here instead of mmengine's ``load_from_http``/``torch.load``. All are
registered through mmengine's ``CheckpointLoader.register_scheme``, which
keeps its dispatch; ``mobileone_mm.checkpoint.loaders.SCHEMES`` lists them
and a test checks that no scheme mmengine registers is left out.
"""
import logging
import os
import os.path as osp
import pickle
import tempfile

import torch
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.runner import CheckpointLoader
from mmengine.runner import checkpoint as mmengine_checkpoint

from .formats import ConversionError, load_bytes, load_file, why_unreadable


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None):
    """mmengine's ``load_from_local`` (same errors for a missing file),
    reading the file as data.

    Raises:
        ConversionError: the file is not data only (it names the file).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return load_file(filename, map_location)


def _fetch(url: str, map_location, model_dir, progress: bool):
    try:
        return torch.hub.load_state_dict_from_url(
            url, model_dir=model_dir, map_location=map_location,
            progress=progress, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ConversionError(f'{url}: cannot read as a checkpoint '
                              f'({why_unreadable(err)})')


@CheckpointLoader.register_scheme(prefixes=('http://', 'https://'),
                                  force=True)
def load_from_http(url: str, map_location=None, model_dir=None,
                   progress: bool = os.isatty(0)):
    """mmengine's ``load_from_http`` (rank 0 downloads, the others wait and
    read the cached file), reading the file as data."""
    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = _fetch(url, map_location, model_dir, progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = _fetch(url, map_location, model_dir, progress)
    return checkpoint


@CheckpointLoader.register_scheme(prefixes=('modelzoo://', 'torchvision://'),
                                  force=True)
def load_from_torchvision(filename: str, map_location=None):
    """mmengine's ``load_from_torchvision`` (torchvision's URL table),
    downloading with :func:`load_from_http`."""
    model_urls = mmengine_checkpoint.get_torchvision_models()
    if filename.startswith('modelzoo://'):
        print_log('The URL scheme of "modelzoo://" is deprecated, please '
                  'use "torchvision://" instead', logger='current',
                  level=logging.WARNING)
    name = filename.split('://', 1)[1]
    if name not in model_urls:
        raise ConversionError(f'{filename}: torchvision has no weights '
                              f'named {name!r}')
    return load_from_http(model_urls[name], map_location=map_location)


@CheckpointLoader.register_scheme(prefixes=('open-mmlab://', 'openmmlab://'),
                                  force=True)
def load_from_openmmlab(filename: str, map_location=None):
    """mmengine's ``load_from_openmmlab`` (its URL table, deprecated names,
    files under ``$MMENGINE_HOME``), reading every file as data."""
    prefix, name = filename.split('://', 1)
    model_urls = mmengine_checkpoint.get_external_models()
    deprecated = mmengine_checkpoint.get_deprecated_model_names()
    if name in deprecated:
        print_log(f'{prefix}://{name} is deprecated in favor of '
                  f'{prefix}://{deprecated[name]}', logger='current',
                  level=logging.WARNING)
        name = deprecated[name]
    if name not in model_urls:
        raise ConversionError(f'{filename}: mmengine\'s model zoo has no '
                              f'checkpoint named {name!r}')
    url = model_urls[name]
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location=map_location)
    return load_from_local(osp.join(mmengine_checkpoint._get_mmengine_home(),
                                    url), map_location=map_location)


@CheckpointLoader.register_scheme(prefixes='mmcls://', force=True)
def load_from_mmcls(filename: str, map_location=None):
    """mmengine's ``load_from_mmcls`` (its URL table and key renaming),
    downloading with :func:`load_from_http`."""
    model_urls = mmengine_checkpoint.get_mmcls_models()
    name = filename[len('mmcls://'):]
    if name not in model_urls:
        raise ConversionError(f'{filename}: mmengine\'s mmcls table has no '
                              f'checkpoint named {name!r}')
    checkpoint = load_from_http(model_urls[name], map_location=map_location)
    return mmengine_checkpoint._process_mmcls_checkpoint(checkpoint)


@CheckpointLoader.register_scheme(prefixes='pavi://', force=True)
def load_from_pavi(filename: str, map_location=None):
    """mmengine's ``load_from_pavi`` (pavi's model cloud), reading the
    downloaded file as data."""
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError(
            'Please install pavi to load checkpoint from modelcloud.')
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp_dir:
        downloaded = osp.join(tmp_dir, model.name)
        model.download(downloaded)
        try:
            return load_file(downloaded, map_location)
        except ConversionError as err:  # name the URL, not the temporary file
            raise ConversionError(str(err).replace(downloaded, filename, 1))


@CheckpointLoader.register_scheme(
    prefixes=[r'(\S+\:)?s3://', r'(\S+\:)?petrel://'], force=True)
def load_from_ceph(filename: str, map_location=None, backend='petrel'):
    """mmengine's ``load_from_ceph`` (object storage through mmengine's file
    backend), reading the bytes as data."""
    file_backend = mmengine_checkpoint.get_file_backend(
        filename, backend_args={'backend': backend})
    return load_bytes(file_backend.get(filename), filename, map_location)


# Every scheme mmengine registers, and the function that now serves it.
SCHEMES = {
    '': load_from_local, 'http://': load_from_http,
    'https://': load_from_http, 'modelzoo://': load_from_torchvision,
    'torchvision://': load_from_torchvision,
    'open-mmlab://': load_from_openmmlab, 'openmmlab://': load_from_openmmlab,
    'mmcls://': load_from_mmcls, 'pavi://': load_from_pavi,
    r'(\S+\:)?s3://': load_from_ceph, r'(\S+\:)?petrel://': load_from_ceph,
}


def is_url(path: str) -> bool:
    """Whether mmengine reads ``path`` through a scheme other than a local
    file (``http(s)://``, ``open-mmlab://``, ``s3://``, ...).

    Example:
        >>> is_url('https://x/a.pth'), is_url('open-mmlab://resnet'), is_url('w/a.pth')
        (True, True, False)
    """
    return '://' in path


def load_any(path_or_url: str) -> dict:
    """The whole checkpoint at a local path or URL, read as data: a file
    with :func:`load_file`, a URL through mmengine's dispatch to the
    loaders above (downloaded once into torch.hub's cache, where mmengine's
    later load of the same URL finds it).

    Raises:
        ConversionError: missing, unreadable or not data only (the message
            starts with ``path_or_url``).
    """
    if not is_url(path_or_url):
        return load_file(path_or_url)
    try:
        return CheckpointLoader.load_checkpoint(path_or_url,
                                                map_location='cpu',
                                                logger='silent')
    except ConversionError:
        raise
    except Exception as err:  # a failed download, an unknown model name
        raise ConversionError(f'{path_or_url}: cannot download ('
                              f'{why_unreadable(err)})') from err
