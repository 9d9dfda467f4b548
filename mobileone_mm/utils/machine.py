"""Where a figure was measured: one description of this machine, shared by
every report (deploy, benchmark, demos)."""
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Dict, List

import torch

PACKAGES = ('torch', 'onnxruntime', 'coremltools', 'mmengine', 'mmcv')
# CPU features that decide int8 and fp32 kernel choices (Linux /proc/cpuinfo).
CPU_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni', 'amx_int8')


def _cpuinfo() -> Dict[str, str]:
    """The first processor's ``key: value`` lines of /proc/cpuinfo ({} off
    Linux)."""
    info: Dict[str, str] = {}
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(':')
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def cpu_flags(info: Dict[str, str]) -> List[str]:
    """Which of :data:`CPU_FLAGS` the CPU has."""
    flags = set(info.get('flags', '').split())
    return [flag for flag in CPU_FLAGS if flag in flags]


def machine() -> Dict[str, object]:
    """The machine, the Python and the library versions a measurement ran on.

    Example:
        >>> info = machine()
        >>> info['cores'] == os.cpu_count() and 'torch' in info
        True
    """
    cpuinfo = _cpuinfo()
    info: Dict[str, object] = dict(
        cpu=cpuinfo.get('model name') or platform.processor()
        or platform.machine(),
        cores=os.cpu_count(), cpu_flags=cpu_flags(cpuinfo),
        system=platform.system(), release=platform.release(),
        arch=platform.machine(), python=platform.python_version(),
        torch_threads=torch.get_num_threads())
    for package in PACKAGES:
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = None
    return info
