"""Files written whole or not at all: every file the package writes goes
through :func:`replacing` (a temporary name in the same folder, flushed,
then ``os.replace`` onto the real name), so a crash, a kill or a full disk
leaves the old file or the complete new one, never half of one.

The temporary name is ``.NAME.partial`` (hidden, next to ``NAME``); a kill
(SIGKILL) between writing and renaming leaves it behind, and
:func:`remove_stale_partials` removes such leftovers, and only them.
"""
import contextlib
import glob
import json
import os
import os.path as osp
import shutil
from typing import Iterator, List

PARTIAL = '.{name}.partial'


def partial_name(path: str) -> str:
    """The temporary name :func:`replacing` writes ``path`` under.

    Example:
        >>> partial_name('work/epoch_3.pth')
        'work/.epoch_3.pth.partial'
    """
    folder, name = osp.split(path)
    return osp.join(folder, PARTIAL.format(name=name))


@contextlib.contextmanager
def replacing(path: str) -> Iterator[str]:
    """A temporary name next to ``path`` to write to; once the block ends
    the file is flushed to disk and renamed onto ``path`` (``os.replace``),
    so ``path`` is either the old file or the complete new one. On an error
    (a full disk included) the temporary file is removed and ``path`` is
    untouched.

    Example:
        >>> import tempfile
        >>> path = osp.join(tempfile.mkdtemp(), 'note.txt')
        >>> with replacing(path) as tmp:
        ...     with open(tmp, 'w') as f:
        ...         _ = f.write('done')
        >>> open(path).read(), osp.exists(tmp)
        ('done', False)
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = partial_name(path)
    try:
        yield tmp
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def write_text(path: str, text: str) -> None:
    """``text`` into ``path``, atomically."""
    with replacing(path) as tmp:
        with open(tmp, 'w') as f:
            f.write(text)


def write_json(path: str, obj, **kwargs) -> None:
    """``json.dump(obj)`` into ``path``, atomically (``indent=2`` unless
    given); ``kwargs`` go to ``json.dump``."""
    kwargs.setdefault('indent', 2)
    with replacing(path) as tmp:
        with open(tmp, 'w') as f:
            json.dump(obj, f, **kwargs)


def save_torch(obj, path: str) -> None:
    """``torch.save(obj)`` into ``path``, atomically."""
    import torch
    with replacing(path) as tmp:
        torch.save(obj, tmp)


def replace_folder(tmp: str, path: str) -> None:
    """Move the finished folder ``tmp`` onto ``path``, replacing a folder
    there: ``path`` is the old folder or the new one at every moment but
    the instant between two renames, and the old one is deleted last."""
    parent, name = osp.split(osp.abspath(path))
    old = osp.join(parent, f'.old{os.getpid()}-{name}')
    if osp.lexists(path):
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_partials(folder: str) -> List[str]:
    """Remove the ``.NAME.partial`` files in ``folder`` that a killed
    :func:`replacing` left behind (no other file is touched); returns their
    paths.

    Example:
        >>> import tempfile
        >>> work = tempfile.mkdtemp()
        >>> for name in ('.epoch_2.pth.partial', 'epoch_1.pth', '.partial'):
        ...     open(osp.join(work, name), 'w').close()
        >>> [osp.basename(p) for p in remove_stale_partials(work)]
        ['.epoch_2.pth.partial']
        >>> sorted(os.listdir(work))
        ['.partial', 'epoch_1.pth']
    """
    stale = [p for p in glob.glob(osp.join(glob.escape(folder), '.*.partial'))
             if len(osp.basename(p)) > len('..partial') and osp.isfile(p)]
    for path in sorted(stale):
        os.remove(path)
    return sorted(stale)
