"""What the benchmark concludes from its measurements: the rank correlations
of the paper's Table 1a and the goal ratios with PASS/FAIL."""
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
    (('mobileone_s0_fused', 'torch'), ('mobileone_s0_fused', 'onnx')),
)


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
