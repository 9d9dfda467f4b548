"""mmengine's checkpoint loaders for local files and http(s) URLs, replaced
by ones that read the file as data (``weights_only=True`` with the
package's allow-list).

Every checkpoint that mmengine reads goes through these once
``mobileone_mm`` is imported: the runner's ``load_from`` and ``resume``,
``load_checkpoint``, the OpenMMLab inferencers and mmdeploy's model builder.
mmengine's own loaders call ``torch.load`` with torch's default, which runs
pickled code before torch 2.6, and read URLs with
``torch.hub.load_state_dict_from_url`` at its default, full unpickling, on
every torch; here both read weights only. Registering through mmengine's
``CheckpointLoader.register_scheme`` keeps its URL dispatch; the model-zoo
schemes (``torchvision://``, ``open-mmlab://``, ...) stay mmengine's.
"""
import os
import os.path as osp
import pickle

import torch
from mmengine.dist import get_dist_info
from mmengine.runner import CheckpointLoader

from .formats import ConversionError, load_file, why_unreadable


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
