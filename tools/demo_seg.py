"""`make demo-seg`: DeepLabV3-MobileOne-S0 trained from scratch on synthetic shapes.

    python tools/demo_seg.py [--work-dir work_dirs/demo_seg] [--data-root data/shapes_seg]
"""
import sys

from mobileone_mm.demos.common import demo_main
from mobileone_mm.demos.segmentation import run

if __name__ == '__main__':
    sys.exit(demo_main(run, __doc__, 'work_dirs/demo_seg', 'data/shapes_seg',
                       'miou'))
