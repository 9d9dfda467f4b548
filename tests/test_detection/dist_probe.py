"""A hook that records what each rank of a distributed run trained with.

Loaded into tools/train.py through a config's ``custom_imports``; each rank
writes ``probe_rank<R>.json`` into the work dir: the world size, the model
wrapper's class, a digest of the parameters before training and after every
step, and the COCO image ids of every batch it trained on.
"""
import hashlib
import json
import os.path as osp

from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def param_digest(model) -> str:
    """SHA-256 of every parameter's bytes (buffers left out: BN statistics
    are per rank, the wrapper does not broadcast them)."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@HOOKS.register_module(force=True)
class DistProbeHook(Hook):
    """Records this rank's wrapper, parameters and samples (see module)."""

    def before_train(self, runner) -> None:
        wrapper = type(runner.model)
        self.record = dict(
            rank=get_rank(), world_size=get_world_size(),
            wrapper=f'{wrapper.__module__}.{wrapper.__qualname__}',
            initial=param_digest(runner.model), steps=[])

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.record['steps'].append(dict(
            img_ids=[s.metainfo['img_id'] for s in data_batch['data_samples']],
            params=param_digest(runner.model)))

    def after_train(self, runner) -> None:
        path = osp.join(runner.work_dir, f'probe_rank{get_rank()}.json')
        with open(path, 'w') as f:
            json.dump(self.record, f)
