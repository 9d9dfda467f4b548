"""The latency-vs-MACs figure, each point labelled with the paper's top-1."""
from typing import Dict, List, Tuple

from .zoo import top1


def _label_offsets(points: List[Tuple[float, float, str]], to_pixels,
                   dpi: float, height: float = 9.) -> List[Tuple]:
    """Vertical offsets (points) that keep 7-pt labels from overlapping:
    from the lowest point up, a label that would cover one already placed
    moves above it."""
    scale = 72. / dpi
    placed, out = [], []
    for x, y, label in sorted(points, key=lambda p: p[1]):
        px, py = (v * scale for v in to_pixels.transform((x, y)))
        left, right = px + 3, px + 3 + 4. * len(label)
        bottom = py + 3
        for pl, pr, pb in sorted(placed, key=lambda b: b[2]):
            if pl < right and left < pr and abs(bottom - pb) < height:
                bottom = pb + height
        placed.append((left, right, bottom))
        out.append((x, y, label, bottom - py))
    return out


def _color(name: str) -> str:
    if name.endswith('_fused'):
        return 'tab:red'
    return 'tab:orange' if name.startswith('mobileone') else 'tab:blue'


def plot(results: Dict[str, Dict], path: str, backend: str = 'torch') -> str:
    """Latency (min) vs MACs, each point labelled with the paper's top-1;
    written to ``path`` (PNG), which is returned."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5.5))
    points = []
    for name, row in results.items():
        if backend not in row['latency_ms']:
            continue
        x, y = row['macs'] / 1e6, row['latency_ms'][backend]['min']
        ax.scatter(x, y, c=_color(name), s=25)
        acc = top1(name)
        points.append((x, y, name + (f' ({acc:.1f}%)'
                                     if acc is not None else '')))
    fig.canvas.draw()  # fixes the axis limits the label layout needs
    for x, y, label, dy in _label_offsets(points, ax.transData, fig.dpi):
        ax.annotate(label, (x, y), fontsize=7, xytext=(3, dy),
                    textcoords='offset points')
    ax.set_xlabel('MACs (M), fvcore-style')
    ax.set_ylabel(f'latency, min of runs (ms), {backend}, batch 1, fp32')
    ax.set_title('Latency vs MACs; labels: paper Table 8 ImageNet top-1\n'
                 'red: MobileOne fused, orange: MobileOne train-time, '
                 'blue: mmpretrain baselines', fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
