from .shapes import CLASSES as SHAPES_CLASSES
from .shapes import PALETTE as SHAPES_PALETTE
from .shapes import generate as generate_shapes

__all__ = ['SHAPES_CLASSES', 'SHAPES_PALETTE', 'generate_shapes']
from .seg_layout import write_ade_layout, write_voc_layout

__all__ += ['write_ade_layout', 'write_voc_layout']
from .imagenet_tiny import generate as generate_imagenet_tiny

__all__ += ['generate_imagenet_tiny']
