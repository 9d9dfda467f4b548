"""Helpers shared by the tests."""
import contextlib
import io
import os
import runpy
import subprocess
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from mobileone_mm.deploy.compare import RTOL, compare_models
from mobileone_mm.models import LinearClassifier, MobileOne

from .apple_reference import AppleMobileOne


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine parameters, so a wrong fusion fails."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            shape, dtype = m.running_mean.shape, m.running_mean.dtype
            m.running_mean.copy_(torch.randn(shape, generator=gen).to(dtype))
            m.running_var.copy_(torch.rand(shape, generator=gen).to(dtype) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.randn(shape, generator=gen).to(dtype))
                m.bias.data.copy_(torch.randn(shape, generator=gen).to(dtype))
    return model


def fusion_check(model: nn.Module, fused: nn.Module, x: torch.Tensor,
                 rtol: float = RTOL) -> dict:
    """The fused model's raw outputs against the unfused model run branch by
    branch (``compare_models``: the unfused blocks forced to
    ``branch_impl='reference'``), never against the unfused model's eval
    form, which computes its kernel with the same algebra as the fusion.
    Every fusion test compares through this, so an error in the shared
    fusion algebra fails them (tests/test_deploy/test_fusion_checks.py)."""
    return compare_models(fused, model, x, rtol)


def assert_fused_matches_branches(model: nn.Module, fused: nn.Module,
                                  x: torch.Tensor, rtol: float = RTOL) -> None:
    check = fusion_check(model, fused, x, rtol)
    assert check['ok'], check


def classifier(backbone: nn.Module, num_classes: int = 1000) -> nn.Module:
    return LinearClassifier(backbone, num_classes)


def apple_model(arch: str, fused: bool = False) -> nn.Module:
    """Apple's module layout with random BN statistics (a converter input)."""
    torch.manual_seed(0)
    return randomize_bn(AppleMobileOne(arch, num_classes=10, fused=fused)).eval()


def ours_from(converted: dict, arch: str, fused: bool):
    """A float64 forward of our backbone + linear head from converted keys."""
    meta_sd = {k[len('backbone.'):]: v for k, v in converted.items()
               if k.startswith('backbone.')}
    model = MobileOne(arch, deploy=fused).eval()
    model.load_state_dict(meta_sd, strict=True)
    model.double()

    def forward(x):
        feat = model(x)[-1].mean((2, 3))
        return F.linear(feat, converted['head.fc.weight'].double(),
                        converted['head.fc.bias'].double())

    return forward


def check_outputs(reference, converted: dict, arch: str, fused: bool) -> None:
    """Converted keys in our model give the reference model's outputs."""
    # float64: random BN statistics make deep nets amplify float32 rounding
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref = reference(x)
        out = ours_from(converted, arch, fused)(x)
    torch.testing.assert_close(out, ref, rtol=1e-7, atol=1e-7 * ref.abs().max().item())


def run_cli(script, *args, cwd=None) -> subprocess.CompletedProcess:
    """A tool's command line run in this process: ``sys.argv`` set, the
    script run as ``__main__`` (its argparse, ``run_tool`` and ``sys.exit``
    as from a shell), stdout and stderr captured. A ``sys.exit`` with a
    message gives status 1 and the message on stderr, as Python's own exit
    does. This saves the ~6 s of imports a subprocess pays; the tests that
    must see a real process (signals, the interpreter's exit status and
    output, a fresh import, environment variables) keep subprocesses.

    Returns:
        What ``subprocess.run(..., capture_output=True, text=True)`` would.
        Any other exception propagates: for a tool that a user runs, that
        is a traceback, and the test fails.
    """
    argv, here = sys.argv, os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        sys.argv = [str(script), *map(str, args)]
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(str(script), run_name='__main__')
            except SystemExit as exit_:
                if isinstance(exit_.code, str):
                    print(exit_.code, file=sys.stderr)
                    code = 1
                else:
                    code = exit_.code or 0
    finally:
        sys.argv = argv
        os.chdir(here)
    return subprocess.CompletedProcess(sys.argv[:1] + [str(script)], code,
                                       out.getvalue(), err.getvalue())
