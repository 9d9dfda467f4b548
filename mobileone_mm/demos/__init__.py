"""The quick start's demos, one module each: ``detection`` (`make demo`),
``segmentation`` (`make demo-seg`) and ``backbone`` (`make demo-backbone`);
``common`` holds what the two training demos share. tools/demo.py,
tools/demo_seg.py and tools/demo_backbone.py are their command lines."""
