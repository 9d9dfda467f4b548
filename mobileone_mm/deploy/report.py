"""The deploy report: which checks failed, ``report.json`` and the terminal
table.

A report is a plain dict (see :func:`mobileone_mm.deploy.deploy`): the
backbone's sections ``fusion``, one per backend by its name
(``onnxruntime``, ``coreml``, ``ncnn``; ``None`` where not chosen) and
``torch`` at the top, the same for the whole model under ``full_model`` (for
a detector or segmentor with its decoding checks and what was verified on
this OS: :mod:`mobileone_mm.deploy.full_model`).
"""
import os.path as osp
from typing import List, Optional

from mobileone_mm.utils.atomic import write_json
from .backends import get_backend
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
        if section.get('task') == 'segmentation':
            continue  # a class map is compared with mmseg's instead
        for backend in report['backends']:
            sub = section.get(backend) or {}
            if sub.get('max_abs_diff') is not None and \
                    'max_abs_output' in sub and _too_far(sub):
                out.append(f'{get_backend(backend).title} vs PyTorch '
                           f'({name}): max|diff| {sub["max_abs_diff"]:.3g}, '
                           f'largest output {sub["max_abs_output"]:.3g} '
                           f'({allowed})')
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
        (report.get(b) or {}).get('branch_free', True)
        for b in report['backends'])
    report['checks_passed'] = not failures
    report['failures'] = failures
    return report


def write_report(report: dict, work_dir: str) -> str:
    """Write ``work_dir/report.json`` (a temporary file, then
    ``os.replace``: never half a report) and note its path in ``report``."""
    path = osp.join(work_dir, 'report.json')
    write_json(path, report)
    report['report_path'] = path
    return path


def _fmt(stats: Optional[dict]) -> str:
    if not stats:
        return '        -        -        -'
    return f'{stats["min"]:9.2f} {stats["median"]:8.2f} {stats["p90"]:8.2f}'


def _verdict(section: dict) -> str:
    verdict = 'branch-free' if section['branch_free'] else 'NOT branch-free'
    return f'{verdict}: {section["chain"]}'


def _checks_lines(name: str, section: dict, backends) -> List[str]:
    lines = []
    for backend in backends:
        sub, title = section.get(backend), get_backend(backend).title
        if not sub:
            continue
        if sub.get('max_abs_diff') is None and 'ops' in sub:
            ops = ', '.join(f'{k} {v}' for k, v in sub['ops'].items()
                            if k != 'const')
            lines.append(f'{name} {title} ops: {ops}')
        elif sub.get('max_abs_diff') is not None:
            lines.append(f'{name} {title}: max|{title} - PyTorch| = '
                         f'{sub["max_abs_diff"]:.3g} (relative '
                         f'{sub.get("max_rel_diff", 0.):.2g})')
        if sub.get('fp16'):
            lines.append(f'  fp16 weights, default options: max|diff| '
                         f'{sub["fp16"]["max_abs_diff"]:.3g} (relative '
                         f'{sub["fp16"]["max_rel_diff"]:.2g})')
        if 'chain' in sub:
            lines.append(f'  {_verdict(sub)}')
        if sub.get('postprocess_share') is not None:
            shares = sub.get('postprocess_share_by_threads') or {}
            per = ', '.join(f'{100 * v:.1f} % with {n} thread(s)'
                            for n, v in sorted(shares.items(),
                                               key=lambda kv: int(kv[0])))
            lines.append(f'  decoding + NMS inside the graph: '
                         + (per or f'{100 * sub["postprocess_share"]:.1f} %')
                         + ' of the network\'s time (min against min)')
    return lines


def _latency_lines(name: str, section: dict, backends) -> List[str]:
    rows, notes = [], []
    threads = sorted(section['torch'].get('latency_ms_by_threads') or {},
                     key=int)
    for backend in backends:
        sub = section.get(backend)
        if not sub:
            continue
        label = get_backend(backend).title
        if sub.get('compute_units'):
            label += f' ({sub["compute_units"]})'
        rows.append((label, sub.get('latency_ms_by_threads') or {},
                     sub.get('latency_ms')))
        if sub.get('latency_ms') is None and sub.get('note'):
            notes.append(f'  note: {sub["note"]}')
    torch_ms = section['torch']
    by = torch_ms.get('latency_ms_by_threads') or {}
    for kind in ('unfused', 'fused'):
        rows.append((f'PyTorch ({kind})',
                     {n: (v or {}).get(kind) for n, v in by.items()},
                     torch_ms['latency_ms'][kind]))
    cols = ''.join(f'{f"{n} thr min":>12}' for n in threads)
    lines = [f'{name + " latency (ms)":<26}{cols}{"min":>9} {"median":>8} '
             f'{"p90":>8}']
    for label, per, stats in rows:
        cells = ''.join(f'{per[n]["min"]:12.2f}' if per.get(n) else
                        f'{"-":>12}' for n in threads)
        lines.append(f'  {label:<24}{cells}{_fmt(stats)}')
    return lines + notes


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
            lines += _checks_lines(name, section, report['backends'])
            lines += _latency_lines(name, section, report['backends'])
            lines += [f'  {kind.replace("_", " ")}: {line}'
                      for kind in ('verified', 'not_verified')
                      for line in section.get(kind, ())]
    runs = report['torch']['latency_ms']['fused']['runs']
    lines.append(f'{runs} runs after 1 warm-up per thread count, backends '
                 f'interleaved (paper Sec. 3.5: the minimum is the reported '
                 f'figure; min/median/p90 at the most threads); report: '
                 f'{report.get("report_path")}')
    return '\n'.join(lines)
