"""The latency-vs-MACs plot and its label layout."""
from matplotlib.transforms import Affine2D

from mobileone_mm.benchmark import plot

PNG = b'\x89PNG\r\n\x1a\n'


def test_png(quick):
    out, report = quick
    png = out / 'latency_vs_macs.png'
    assert report['plot'] == str(png)
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000


def test_plot_skips_models_without_the_backend(tmp_path):
    def row(ms, macs, backend='torch'):
        return dict(macs=macs, latency_ms={backend: dict(min=ms, median=ms)})

    results = {'mobileone_s0': row(40., 1.1e9), 'mobileone_s0_fused': row(8., 2.8e8),
               'mobilenet_v2_1.0': row(15., 3.1e8), 'onnx_only': row(1., 1e6, 'onnxruntime')}
    path = plot.plot(results, str(tmp_path / 'p.png'))
    assert path == str(tmp_path / 'p.png')
    assert (tmp_path / 'p.png').read_bytes()[:8] == PNG


def test_plot_labels_of_close_points_do_not_overlap():
    identity = Affine2D()  # data coordinates are pixels; 72 dpi: pixels are points
    points = [(0., 0., 'a' * 10), (5., 2., 'b' * 10), (200., 1., 'c' * 10)]
    out = {label: dy for _, _, label, dy in
           plot._label_offsets(points, identity, dpi=72., height=9.)}
    assert out['a' * 10] == 3  # lowest: its default place
    assert 2 + out['b' * 10] >= 0 + out['a' * 10] + 9  # moved above 'a'
    assert out['c' * 10] == 3  # far to the right: not moved


def test_plot_label_offsets_scale_with_dpi():
    # at 144 dpi a pixel is half a point: the same pixel gap is half as wide
    identity = Affine2D()
    points = [(0., 0., 'a'), (0., 10., 'b')]
    at72 = plot._label_offsets(points, identity, dpi=72.)
    at144 = plot._label_offsets(points, identity, dpi=144.)
    assert [p[3] for p in at72] == [3, 3]  # 10 points apart: no overlap
    assert at144[1][3] > 3  # 5 points apart: moved up
