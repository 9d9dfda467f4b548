"""`make demo`: SSDLite-MobileOne-S0 trained from scratch on synthetic shapes.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/shapes]
"""
from mobileone_mm.demo import run
from mobileone_mm.demo_common import main

if __name__ == '__main__':
    main(run, __doc__, 'work_dirs/demo', 'data/shapes', 'map')
