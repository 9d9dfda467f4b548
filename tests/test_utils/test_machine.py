"""machine(): the one description of the machine every report carries."""
import os
import platform
from importlib.metadata import version

import torch

from mobileone_mm.utils.machine import CPU_FLAGS, cpu_flags, machine


def test_machine_fields():
    info = machine()
    assert isinstance(info['cpu'], str) and info['cpu']
    assert info['cores'] == os.cpu_count()
    assert isinstance(info['cpu_flags'], list)
    assert set(info['cpu_flags']) <= set(CPU_FLAGS)
    assert info['torch'] == version('torch')
    assert info['torch'].split('+')[0] == torch.__version__.split('+')[0]
    assert info['torch_threads'] == torch.get_num_threads()
    assert info['python'] == platform.python_version()
    assert info['mmengine'] is not None
    assert info.keys() >= {'system', 'release', 'arch', 'onnxruntime',
                           'coremltools', 'mmcv'}


def test_cpu_flags_keeps_the_listed_ones_in_order():
    info = {'flags': 'sse fma avx512f avx2 avx512_vnni'}
    assert cpu_flags(info) == ['avx2', 'fma', 'avx512f', 'avx512_vnni']
    assert cpu_flags({}) == []
