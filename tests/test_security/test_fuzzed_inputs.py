"""Every user-facing loader and converter fed malformed files, 284 in all
(a seeded generator): random bytes, truncated zips, zips holding the wrong
types, tensors of the wrong dtype or shape, huge declared sizes, empty state
dicts, NaN weights and pickles that would run code. Each case must end in
one ``error:`` line that names the file, with no traceback; no code runs, no
input is modified and nothing (partial or whole) is written.

The tools run in this process through their command lines (``run_cli``:
argparse, ``run_tool`` and ``sys.exit`` as from a shell); ``Pretrained`` is
the backbone's ``init_weights`` with that ``init_cfg``.
"""
import collections
import hashlib
import io
import json
import random
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from mobileone_mm.apis import build_model
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError

from ..conftest import ROOT
from ..test_detection.test_ssdlite import (SHAPES_CFG, shapes_cfg,
                                           shapes_options)
from ..utils import run_cli
from .payload import code_checkpoint

TOOLS = ROOT / 'tools'
SEED = 0
DATA = []  # --cfg-options of the tiny data set (set by the fixture)
# The five tools that take a config read every file through the same
# functions (checkpoint.loaders.load_any, fit.runner_state, fit.check_fit),
# so each gets every kind of malformed file but at most this many of a kind
# (a different seeded subset per tool: 32 files each); the converter and
# Pretrained, whose readers differ, get all 62.
PER_KIND = 4


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _huge_zip(data: bytes) -> bytes:
    """A torch zip whose first tensor record declares ~4 GiB (sizes in the
    local and central headers patched; the bytes stay small)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        name = next(i.filename for i in zf.infolist()
                    if '/data/' in i.filename)
    blob = bytearray(data)
    encoded = name.encode()
    for signature, size_at in ((b'PK\x03\x04', 18), (b'PK\x01\x02', 20)):
        start = 0
        while True:
            at = blob.find(signature, start)
            if at < 0:
                break
            name_at = at + (30 if signature == b'PK\x03\x04' else 46)
            if blob[name_at:name_at + len(encoded)] == encoded:
                blob[at + size_at:at + size_at + 8] = struct.pack(
                    '<II', 0xFFFFFFF0, 0xFFFFFFF0)
            start = at + 4
    return bytes(blob)


def _safetensors(header: dict, payload: bytes = b'',
                 declared: int = None) -> bytes:
    text = json.dumps(header).encode()
    size = len(text) if declared is None else declared
    return struct.pack('<Q', size) + text + payload


def malformed_cases(state: dict, rng: random.Random):
    """``(name, kind, bytes or builder)`` for each malformed file, built from
    a real state dict ``state`` of the model the tools are pointed at.
    ``builder(path, marker)`` writes a file whose unpickling would run
    code."""
    good = _torch_bytes({'state_dict': state, 'meta': {'epoch': 1},
                         'message_hub': {}})
    keys = list(state)
    cases = []
    for i, size in enumerate((0, 1, 7, 64, 512, 4096, 30000)):
        cases.append((f'random_{i}.pth', 'random bytes',
                      bytes(rng.getrandbits(8) for _ in range(size))))
    for i, magic in enumerate((b'PK\x03\x04', b'\x80\x02', b'\x80\x04\x95',
                               b'PK\x05\x06')):
        cases.append((f'magic_{i}.pth', 'random bytes', magic + bytes(
            rng.getrandbits(8) for _ in range(rng.randrange(10, 2000)))))
    for i, cut in enumerate(sorted(rng.sample(range(1, len(good)), 14))):
        cases.append((f'truncated_{i}.pth', 'truncated zip', good[:cut]))
    wrong_types = [[], 3, 'weights', None, torch.zeros(3), (1, 2),
                   {'state_dict': 5}, {'state_dict': [torch.zeros(1)]},
                   {'a': 'b'}, {'state_dict': {'a': 'b'}},
                   {1: torch.zeros(1)}, {'state_dict': {(1, 2): torch.zeros(1)}},
                   {'state_dict': {'a': {'b': torch.zeros(1)}}},
                   {'state_dict': {k: v.tolist() for k, v in
                                   list(state.items())[:3]}},
                   collections.OrderedDict(x=torch.zeros(2)),
                   {'state_dict': {'backbone.stem.x': torch.zeros(2)}}]
    for i, obj in enumerate(wrong_types):
        cases.append((f'wrong_type_{i}.pth', 'zip of wrong types',
                      _torch_bytes(obj)))
    for dtype in (torch.int64, torch.bool, torch.uint8, torch.complex64):
        bad = {k: v.to(dtype) if v.is_floating_point() else v
               for k, v in state.items()}
        cases.append((f'dtype_{str(dtype)[6:]}.pth', 'wrong dtype',
                      _torch_bytes({'state_dict': bad, 'meta': {}})))
    for i in range(4):
        bad = dict(state)
        for key in rng.sample(keys, 5):
            shape = [rng.randrange(1, 5) for _ in range(rng.randrange(0, 5))]
            bad[key] = torch.zeros(shape)
        cases.append((f'shape_{i}.pth', 'wrong shape',
                      _torch_bytes({'state_dict': bad, 'meta': {}})))
    cases.append(('huge_zip.pth', 'huge declared size', _huge_zip(good)))
    cases.append(('huge_header.safetensors', 'huge declared size',
                  _safetensors({}, declared=2**62)))
    cases.append(('huge_tensor.safetensors', 'huge declared size',
                  _safetensors({'w': dict(dtype='F32', shape=[2**20, 2**20],
                                          data_offsets=[0, 2**42])},
                               b'\0' * 16)))
    cases.append(('bad_json.safetensors', 'random bytes',
                  struct.pack('<Q', 10) + b'{not json}'))
    for i, obj in enumerate(({}, {'state_dict': {}},
                             {'state_dict': {}, 'meta': {}, 'message_hub': {}},
                             collections.OrderedDict())):
        cases.append((f'empty_{i}.pth', 'empty state dict', _torch_bytes(obj)))
    for i, value in enumerate((float('nan'), float('inf'), -float('inf'))):
        bad = dict(state)
        for key in rng.sample([k for k in keys
                               if state[k].is_floating_point()], 2):
            bad[key] = state[key].clone().fill_(value)
        cases.append((f'non_finite_{i}.pth', 'NaN weights', _torch_bytes(
            {'state_dict': bad, 'meta': {'epoch': 1}, 'message_hub': {}})))
    for payload in ('os.system', 'Path.touch'):
        cases.append((f'code_{payload}.pth', 'runs code',
                      lambda path, marker, p=payload: code_checkpoint(
                          path, marker, state, p)))
    return cases


def write_cases(folder: Path, marker: Path, state: dict):
    folder.mkdir(parents=True)
    files = []
    for name, kind, content in malformed_cases(state, random.Random(SEED)):
        path = folder / name
        if callable(content):
            content(path, marker)
        else:
            path.write_bytes(content)
        files.append((path, kind))
    return files


def per_kind(files, most: int, rng: random.Random):
    """At most ``most`` files of each kind (all of a kind with fewer), in
    their order; ``rng`` picks which."""
    kinds = collections.defaultdict(list)
    for item in files:
        kinds[item[1]].append(item)
    chosen = {id(item) for group in kinds.values()
              for item in (rng.sample(group, most) if len(group) > most
                           else group)}
    return [item for item in files if id(item) in chosen]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pretrained(path, out):
    """The backbone's ``init_cfg=Pretrained`` on the file; the error as the
    tools print it."""
    model = MobileOne('s0', init_cfg=dict(type='Pretrained',
                                          checkpoint=str(path)))
    try:
        model.init_weights()
    except UserError as err:
        return 1, f'error: {err}\n'
    return 0, ''


def _cli(*args):
    proc = run_cli(*args)
    return proc.returncode, proc.stdout + proc.stderr


# loader -> how to run it on a file: (path, output path) -> (status, output)
LOADERS = {
    'convert_checkpoint': lambda path, out: _cli(
        TOOLS / 'convert_checkpoint.py', path, out / 'converted.pth'),
    'Pretrained': _pretrained,
    'test': lambda path, out: _cli(
        TOOLS / 'test.py', SHAPES_CFG, path, '--work-dir', out,
        '--cfg-options', *DATA),
    'train --resume': lambda path, out: _cli(
        TOOLS / 'train.py', SHAPES_CFG, '--resume', path, '--work-dir', out,
        '--cfg-options', *DATA),
    'reparameterize': lambda path, out: _cli(
        TOOLS / 'reparameterize.py', SHAPES_CFG, path, out / 'fused.pth'),
    'deploy': lambda path, out: _cli(
        TOOLS / 'deploy.py', SHAPES_CFG, path, '--work-dir', out,
        '--backends', 'onnxruntime', '--runs', '1'),
    'quantize': lambda path, out: _cli(
        TOOLS / 'quantize.py', SHAPES_CFG, path, '--work-dir', out,
        '--backend', 'onnxruntime'),
}


@pytest.fixture(scope='module')
def cases(tmp_path_factory, shapes_root):
    """The malformed files, made once: the detector's (for the tools that
    take a config) and a classifier's (for the converter and Pretrained,
    which read MobileOne classifier files)."""
    root = tmp_path_factory.mktemp('fuzz')
    torch.manual_seed(0)
    detector = build_model(shapes_cfg(shapes_root)).state_dict()
    backbone = {f'backbone.{k}': v for k, v in
                MobileOne('s0').state_dict().items()}
    marker = root / 'MARKER'
    DATA[:] = shapes_options(shapes_root)  # the tiny data set, for train/test
    return marker, {
        'detector': write_cases(root / 'detector', marker, detector),
        'backbone': write_cases(root / 'backbone', marker, backbone)}


@pytest.mark.parametrize('loader', sorted(LOADERS))
def test_malformed_files_end_in_one_error_line(loader, cases, tmp_path,
                                               capsys):
    marker, sets = cases
    if loader in ('convert_checkpoint', 'Pretrained'):
        files = sets['backbone']
    else:  # the config tools share one reader: every kind, a seeded subset
        files = per_kind(sets['detector'], PER_KIND, random.Random(loader))
    before = {path: digest(path) for path, _ in files}
    failures, kinds = [], collections.Counter()
    for i, (path, kind) in enumerate(files):
        out = tmp_path / f'out_{i}'
        try:
            code, output = LOADERS[loader](path, out)
        except Exception as err:  # a traceback for the user
            code, output = -1, f'Traceback: {type(err).__name__}: {err}'
        lines = [ln for ln in output.strip().splitlines()
                 if not ln.startswith(('warning: ', 'note: '))]
        last = lines[-1] if lines else ''
        problem = None
        if code == 0 or not last.startswith('error: '):
            problem = f'status {code}, last line {last[:200]!r}'
        elif str(path) not in last:
            problem = f'the error does not name the file: {last[:300]!r}'
        elif 'Traceback' in output or len(lines) != 1:
            problem = f'{len(lines)} lines: {output[-500:]!r}'
        elif out.exists() and any(out.rglob('*')):
            problem = f'wrote {sorted(map(str, out.rglob("*")))[:3]}'
        if problem:
            failures.append(f'{path.name} ({kind}): {problem}')
        kinds[kind] += 1
    assert not marker.exists(), 'a payload ran'
    assert {path: digest(path) for path, _ in files} == before  # unmodified
    with capsys.disabled():
        print(f'\n{loader}: {sum(kinds.values())} malformed files, '
              f'{len(failures)} not refused cleanly ('
              + ', '.join(f'{n} {k}' for k, n in sorted(kinds.items())) + ')')
    assert not failures, '\n'.join(failures)
