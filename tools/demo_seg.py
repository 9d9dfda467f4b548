"""`make demo-seg`: DeepLabV3-MobileOne-S0 trained from scratch on synthetic shapes.

    python tools/demo_seg.py [--work-dir work_dirs/demo_seg] [--data-root data/shapes_seg]
"""
from mobileone_mm.demo_common import main
from mobileone_mm.demo_seg import run

if __name__ == '__main__':
    main(run, __doc__, 'work_dirs/demo_seg', 'data/shapes_seg', 'miou')
