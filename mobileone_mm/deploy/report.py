"""The deploy report: which checks failed, ``report.json`` and the terminal
table.

A report is a plain dict (see :func:`mobileone_mm.deploy.deploy`): the
backbone's sections ``fusion``, ``coreml``, ``onnx``, ``torch`` at the top,
the same for the whole model under ``full_model`` (for a detector or
segmentor with its decoding checks and what was verified on this OS:
:mod:`mobileone_mm.deploy.full_model`).
"""
import json
import os
import os.path as osp
from typing import List, Optional

from .compare import RTOL


def _too_far(section: dict) -> bool:
    """Whether a section's outputs are further than ``RTOL`` x max(largest
    output, 1) from the reference (the rule of ``compare.compare_outputs``).

    Example:
        >>> _too_far(dict(max_abs_diff=1e-3, max_abs_output=2.0))
        True
        >>> _too_far(dict(max_abs_diff=1e-5, max_abs_output=0.5))
        False
    """
    return section['max_abs_diff'] > RTOL * max(section['max_abs_output'], 1.0)


def _failures(report: dict) -> List[str]:
    """One line per failed check: blocks left unfused, fused vs unfused
    outputs, a backbone that is not branch-free, ONNX Runtime vs PyTorch."""
    out = []
    allowed = f'allowed {RTOL:g} x max(largest output, 1)'
    fusion = report['fusion']
    if fusion['unfused_blocks']:
        out.append(f'{fusion["unfused_blocks"]} MobileOne blocks still have '
                   f'branches after reparameterize')
    if _too_far(fusion):
        out.append(f'fused vs unfused outputs differ: max|diff| '
                   f'{fusion["max_abs_diff"]:.3g}, largest output '
                   f'{fusion["max_abs_output"]:.3g} ({allowed})')
    for backend in report['backends']:
        section = report.get(backend)
        if section and section.get('branch_free') is False:
            out.append(f'{backend} backbone is not branch-free: '
                       f'{section["chain"]}')
    for name, section in (('backbone', report),
                          ('full model', report.get('full_model') or {})):
        onnx = section.get('onnx')
        # a class map is compared with mmseg's instead (complete_failures)
        if onnx and section.get('task') != 'segmentation' and _too_far(onnx):
            out.append(f'ONNX Runtime vs PyTorch ({name}): max|diff| '
                       f'{onnx["max_abs_diff"]:.3g}, largest output '
                       f'{onnx["max_abs_output"]:.3g} ({allowed})')
    return out + _complete_failures(report.get('full_model') or {})


def _complete_failures(full: dict) -> List[str]:
    """The complete model's checks: its predictions against mmdet's or
    mmseg's (PyTorch, ONNX Runtime), its Core ML package read back, and
    Core ML against PyTorch (macOS)."""
    out = []
    for runtime, checks in (full.get('reference') or {}).items():
        named = {'class map': checks} if 'ok' in checks else checks
        out += [f'complete model in {runtime}: {name} differs from '
                f'{"mmseg" if "ok" in checks else "mmdet"}: {check}'
                for name, check in named.items() if not check['ok']]
    coreml = full.get('coreml') or {}
    if coreml.get('problems'):
        out.append('complete Core ML model read back: '
                   + '; '.join(coreml['problems']))
    mac = coreml.get('macos_check')
    if mac and not mac['ok']:
        out.append(f'complete Core ML model vs PyTorch on macOS: {mac}')
    return out


def conclude(report: dict) -> dict:
    """Add the verdicts: ``branch_free`` (no block left unfused, and every
    exported backbone program a plain chain), ``failures`` and
    ``checks_passed``."""
    failures = _failures(report)
    report['branch_free'] = report['fusion']['unfused_blocks'] == 0 and all(
        report[b].get('branch_free', True) for b in report['backends'])
    report['checks_passed'] = not failures
    report['failures'] = failures
    return report


def write_report(report: dict, work_dir: str) -> str:
    """Write ``work_dir/report.json`` (a temporary file, then
    ``os.replace``: never half a report) and note its path in ``report``."""
    path = osp.join(work_dir, 'report.json')
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'w') as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    report['report_path'] = path
    return path


def _fmt(stats: Optional[dict]) -> str:
    if not stats:
        return '        -        -        -'
    return f'{stats["min"]:9.2f} {stats["median"]:8.2f} {stats["p90"]:8.2f}'


def _verdict(section: dict) -> str:
    verdict = 'branch-free' if section['branch_free'] else 'NOT branch-free'
    return f'{verdict}: {section["chain"]}'


def _checks_lines(name: str, coreml: Optional[dict],
                  onnx: Optional[dict]) -> List[str]:
    lines = []
    if coreml:
        ops = ', '.join(f'{k} {v}' for k, v in coreml['ops'].items()
                        if k != 'const')
        lines.append(f'{name} Core ML ops: {ops}')
        if 'chain' in coreml:
            lines.append(f'  {_verdict(coreml)}')
    if onnx:
        lines.append(f'{name} ONNX: max|ORT - PyTorch| = '
                     f'{onnx["max_abs_diff"]:.3g} (relative '
                     f'{onnx["max_rel_diff"]:.2g})')
        if 'chain' in onnx:
            lines.append(f'  {_verdict(onnx)}')
    return lines


def _latency_lines(name: str, section: dict) -> List[str]:
    coreml, onnx = section.get('coreml'), section.get('onnx')
    rows = []
    if coreml:
        rows.append((f'Core ML ({coreml["compute_units"]})',
                     coreml['latency_ms']))
    if onnx:
        rows.append(('ONNX Runtime (fused)', onnx['latency_ms']))
    torch_ms = section['torch']['latency_ms']
    rows += [('PyTorch (unfused)', torch_ms['unfused']),
             ('PyTorch (fused)', torch_ms['fused'])]
    lines = [f'{name + " latency (ms)":<26}{"min":>9} {"median":>8} '
             f'{"p90":>8}']
    lines += [f'  {label:<24}{_fmt(stats)}' for label, stats in rows]
    if coreml and coreml['latency_ms'] is None:
        lines.append(f'  note: {coreml["note"]}')
    return lines


def format_report(report: dict) -> str:
    """The short terminal table of a report."""
    lines = [f'{report["config"]}  input {tuple(report["input_shape"])}  '
             f'MobileOne-{report["arch"].upper()}']
    lines += [f'note: {note}' for note in report['notes']]
    fusion = report['fusion']
    lines.append(f'fusion: max|fused - unfused| = '
                 f'{fusion["max_abs_diff"]:.3g} (relative '
                 f'{fusion["max_rel_diff"]:.2g}); '
                 f'{fusion["unfused_blocks"]} unfused blocks')
    for name, section in (('backbone', report),
                          ('model', report.get('full_model'))):
        if section:
            lines += _checks_lines(name, section.get('coreml'),
                                   section.get('onnx'))
            lines += _latency_lines(name, section)
            lines += [f'  {kind.replace("_", " ")}: {line}'
                      for kind in ('verified', 'not_verified')
                      for line in section.get(kind, ())]
    runs = report['torch']['latency_ms']['fused']['runs']
    lines.append(f'{runs} runs after 1 warm-up (paper Sec. 3.5: the minimum '
                 f'is the reported figure); report: '
                 f'{report.get("report_path")}')
    return '\n'.join(lines)
