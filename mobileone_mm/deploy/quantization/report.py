"""The int8 report: ``quant_report.json`` (always the same top-level keys, so
a reader never guesses whether a section exists) and its terminal table."""
import os.path as osp
from typing import Dict, List, Optional

from mobileone_mm.utils.atomic import write_json
from ..evaluation import primary_metric

__all__ = ['NO_EVAL', 'REPORT_KEYS', 'REPORT_NAME', 'format_quant_report',
           'skipped_onnxruntime', 'write_quant_report']

REPORT_NAME = 'quant_report.json'
REPORT_KEYS = ('fp32', 'int8', 'per_layer_snr_db', 'coreml', 'calibration',
               'machine')
NO_EVAL = 'not measured: pass --eval to run the config\'s test set'


def skipped_onnxruntime(why: str) -> Dict[str, dict]:
    """The ONNX Runtime sections when that backend was not requested."""
    model = dict(path=None, metric=None, latency_ms=None, skipped=why)
    return dict(fp32=dict(model), int8=dict(model, ops={}),
                per_layer_snr_db=dict(skipped=why))


def write_quant_report(report: dict, work_dir: str) -> str:
    """Write ``work_dir/quant_report.json`` atomically; returns its path."""
    missing = [k for k in REPORT_KEYS if k not in report]
    if missing:
        raise ValueError(f'report lacks {missing}')
    path = osp.join(work_dir, REPORT_NAME)
    write_json(path, {k: report[k] for k in REPORT_KEYS}, allow_nan=False)
    return path


def _num(value, fmt: str = '.3f') -> str:
    return '-' if value is None else format(value, fmt)


def _metric(section: Optional[dict], key: Optional[str],
            field: str = 'metric') -> str:
    metrics = (section or {}).get(field) or {}
    return _num(metrics.get(key)) if key else '-'


def _latency(section: dict) -> List[str]:
    lat = section.get('latency_ms') or {}
    return [_num(lat.get('min'), '.2f'), _num(lat.get('median'), '.2f')]


def _rows(report: dict, key: Optional[str]) -> List[List[str]]:
    fp32, int8 = report['fp32'], report['int8']
    rows = [['PyTorch (fused)', _metric(fp32, key, 'pytorch_metric'), '-',
             '-', '-'],
            ['ORT fp32', _metric(fp32, key), *_latency(fp32),
             _num(fp32.get('size_mb'), '.2f')],
            ['ORT int8', _metric(int8, key), *_latency(int8),
             _num(int8.get('size_mb'), '.2f')]]
    coreml = report['coreml']
    for name, sec in coreml.items():
        if isinstance(sec, dict):
            rows.append([f'Core ML {name}', _metric(sec, key), '-', '-',
                         _num(sec.get('size_mb'), '.2f')])
    return rows


def _calibration_line(cal: dict) -> str:
    line = (f'calibration: {cal.get("images")} images, source '
            f'{cal.get("source")}'
            + (f' ({cal["split"]} split)' if cal.get('split') else '')
            + f', {cal.get("method")}, '
            + ('per-channel' if cal.get('per_channel') else 'per-tensor')
            + ' weights')
    if cal.get('source') == 'random':
        line += '\n  WARNING: ' + str(cal.get('warning'))
    return line


def format_quant_report(report: dict) -> str:
    """A short table: metric, latency and size per model, the worst layers
    by SNR, and how the model was calibrated."""
    metrics = report['fp32'].get('metric') or \
        report['fp32'].get('pytorch_metric')
    key = primary_metric(metrics)
    header = ['model', key or 'metric', 'min ms', 'median ms', 'MB']
    rows = [header] + _rows(report, key)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in rows]
    if key is None:
        lines.append(f'metric: {NO_EVAL}')
    worst = report['per_layer_snr_db'].get('worst') or []
    if worst:
        lines.append('worst layers (own quantization SNR, dB):')
        lines += [f'  {w["snr_db"]:7.2f}  {w["kind"]:<10}  {w["layer"]}'
                  for w in worst]
    lines.append(_calibration_line(report['calibration']))
    for name in ('fp32', 'int8'):
        if report[name].get('skipped'):
            lines.append(f'ONNX Runtime: {report[name]["skipped"]}')
            break
    lines += _coreml_lines(report['coreml'])
    return '\n'.join(lines)


def _coreml_lines(coreml: dict) -> List[str]:
    """Below the table: what the Core ML rows are (weight error, where the
    metric comes from, how a8w8 was made), or why there are none."""
    if coreml.get('skipped'):
        return [f'Core ML: {coreml["skipped"]}']
    lines = []
    errors = [f'{name} {_num(sec["max_rel_weight_error"], ".2g")}'
              for name, sec in coreml.items() if isinstance(sec, dict)
              and sec.get('max_rel_weight_error') is not None]
    if errors:
        lines.append('Core ML weights, max relative error vs fp32: '
                     + ', '.join(errors))
    sources = {sec['metric_source'] for sec in coreml.values()
               if isinstance(sec, dict) and sec.get('metric') is not None
               and sec.get('metric_source')}
    lines += [f'Core ML metric: {source}' for source in sorted(sources)]
    for name, sec in coreml.items():
        if isinstance(sec, dict) and sec.get('skipped'):
            lines.append(f'Core ML {name}: skipped: {sec["skipped"]}')
        if isinstance(sec, dict) and sec.get('coreml_route') and \
                not sec.get('skipped'):
            cal = sec.get('calibration') or {}
            lines.append(
                f'Core ML {name}: made in PyTorch (coremltools.optimize.'
                f'torch LinearQuantizer), activations calibrated on '
                f'{cal.get("images", "?")} {cal.get("source") or ""} images'
                + (' (RANDOM: ranges mean nothing)'
                   if cal.get('source') == 'random' else '')
                + f'; the Core ML-side route here: {sec["coreml_route"]}')
    if coreml.get('note'):
        lines.append(f'Core ML: {coreml["note"]}')
    return lines
