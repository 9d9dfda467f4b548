"""What the benchmark concludes from its measurements: the rank correlations
of the paper's Table 1a and the goal ratios with PASS/FAIL, and the int8
goal (fused S0 int8 vs fp32 in ONNX Runtime, per thread count)."""
from typing import Dict, List, Optional

# The thresholds come from the official code (ml-mobileone) measured on a
# desktop CPU: fused S0 / MobileNetV2-1.0 = 0.44-0.48 in PyTorch eager, a
# fusion speed-up of 5.2-5.5x, ONNX Runtime 2.2x faster than PyTorch on fused
# S0; each goal is a round number a little looser than that figure.
GOALS = (
    ('fused S0 / MobileNetV2-1.0 latency, PyTorch eager', '<=', 0.5),
    ('fusion speed-up of S0 (train-time / fused), PyTorch eager', '>=', 5.0),
    ('fastest CPU backend (ONNX Runtime) speed-up over PyTorch eager, fused S0',
     '>=', 2.0),
)
# Numerator and denominator of each goal's ratio: (model, backend) pairs.
GOAL_RATIOS = (
    (('mobileone_s0_fused', 'torch'), ('mobilenet_v2_1.0', 'torch')),
    (('mobileone_s0', 'torch'), ('mobileone_s0_fused', 'torch')),
    (('mobileone_s0_fused', 'torch'), ('mobileone_s0_fused', 'onnxruntime')),
)
# The int8 goal: fused S0 in int8 at least 1.5x faster than in fp32, ONNX
# Runtime on the CPU, with each thread count measured (fp32 time / int8 time).
INT8_GOAL = dict(model='mobileone_s0_fused', speedup=1.5)


def spearman(results: Dict[str, Dict], backend: str) -> Dict:
    """Table 1a: rank correlation of the minimum latency with MACs and with
    params over the models measured (scipy.stats.spearmanr)."""
    from scipy.stats import spearmanr
    rows = [r for r in results.values() if backend in r['latency_ms']]
    if len(rows) < 3:
        return dict(models=len(rows), note='needs at least 3 models')
    lat = [r['latency_ms'][backend]['min'] for r in rows]
    out = dict(models=len(rows))
    for key in ('macs', 'params'):
        rho, p = spearmanr(lat, [r[key] for r in rows])
        out[key] = dict(corr=float(rho), p_value=float(p))
    return out


def _ratio(results: Dict[str, Dict], num, den, stat: str) -> Optional[float]:
    """``num``'s latency over ``den``'s (each a (model, backend) pair);
    ``None`` when either was not measured."""
    values = []
    for name, backend in (num, den):
        latency = results.get(name, {}).get('latency_ms', {}).get(backend)
        if latency is None:
            return None
        values.append(latency[stat])
    return values[0] / values[1]


def goals(results: Dict[str, Dict]) -> List[Dict]:
    """The three goal ratios, measured (never hard-coded); a goal whose
    models were not measured is reported as missing.

    Example:
        >>> goals({})[0]['status']
        'MISSING'
    """
    out = []
    for (text, op, target), (num, den) in zip(GOALS, GOAL_RATIOS):
        r = _ratio(results, num, den, 'min')
        ok = None if r is None else (r <= target if op == '<='
                                     else r >= target)
        out.append(dict(goal=f'{text} {op} {target}', ratio=r,
                        ratio_of_medians=_ratio(results, num, den, 'median'),
                        status='MISSING' if ok is None else
                        ('PASS' if ok else 'FAIL')))
    return out


def int8_speedups(row: Dict) -> Dict[str, Dict[str, float]]:
    """fp32 time / int8 time of one report row's int8 part, per thread count
    (``str(threads)``), of the minimums and of the medians.

    Example:
        >>> lat = lambda lo: dict(min=lo, median=2 * lo)
        >>> int8_speedups({'int8': {'latency_ms': {'1': dict(
        ...     fp32=lat(3.), int8=lat(2.))}}})
        {'1': {'min': 1.5, 'median': 1.5}}
    """
    out = {}
    for threads, lat in row.get('int8', {}).get('latency_ms', {}).items():
        out[threads] = {stat: lat['fp32'][stat] / lat['int8'][stat]
                        for stat in ('min', 'median')}
    return out


def int8_goals(results: Dict[str, Dict]) -> List[Dict]:
    """The int8 goal (:data:`INT8_GOAL`) per thread count measured: the
    speed-up of the minimums (the paper's statistic) decides PASS/FAIL;
    ``[]`` when the goal's model has no int8 rows."""
    target = INT8_GOAL['speedup']
    out = []
    row = results.get(INT8_GOAL['model'], {})
    for threads, ratio in sorted(int8_speedups(row).items(),
                                 key=lambda kv: int(kv[0])):
        out.append(dict(model=INT8_GOAL['model'], threads=int(threads),
                        target=target, ratio=ratio['min'],
                        ratio_of_medians=ratio['median'],
                        status='PASS' if ratio['min'] >= target else 'FAIL'))
    return out


def int8_goal_line(goal: Dict) -> str:
    """The printed line of one :func:`int8_goals` entry.

    Example:
        >>> line = int8_goal_line(dict(threads=1, ratio=1.234, target=1.5,
        ...                            ratio_of_medians=1.1, status='FAIL'))
        >>> line.startswith('fused S0 int8 vs fp32 (ONNX Runtime): 1.23× '
        ...                 'with 1 thread(s), goal ≥ 1.5×: NOT met')
        True
    """
    met = 'met' if goal['status'] == 'PASS' else 'NOT met'
    return (f"fused S0 int8 vs fp32 (ONNX Runtime): {goal['ratio']:.2f}× "
            f"with {goal['threads']} thread(s), goal ≥ {goal['target']}×: "
            f"{met} (of medians {goal['ratio_of_medians']:.2f}×)")
