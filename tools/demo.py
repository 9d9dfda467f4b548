"""`make demo`: SSDLite-MobileOne-S0 trained from scratch on synthetic shapes.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/shapes]
"""
import sys

from mobileone_mm.demos.common import demo_main
from mobileone_mm.demos.detection import run

if __name__ == '__main__':
    sys.exit(demo_main(run, __doc__, 'work_dirs/demo', 'data/shapes', 'map'))
