"""Checkpoints whose unpickling would run a command: a ``__reduce__`` that
makes a marker file (``os.system('touch MARKER')``, or ``Path.touch``)."""
import os
import pathlib
from pathlib import Path

import torch


class _ShellCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class _PathTouch(_ShellCommand):
    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker), ))


PAYLOADS = {'os.system': _ShellCommand, 'Path.touch': _PathTouch}


def code_checkpoint(path: Path, marker: Path, state_dict: dict,
                    payload: str = 'os.system') -> Path:
    """An mmengine-style checkpoint of ``state_dict`` whose ``meta`` would
    create ``marker`` when unpickled. The pickle names only ``os.system``
    (or ``pathlib``), not this module, so any process can unpickle it."""
    torch.save({'state_dict': state_dict, 'meta': PAYLOADS[payload](marker)},
               path)
    return path
