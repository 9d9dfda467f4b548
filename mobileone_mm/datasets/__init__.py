from .shapes import CLASSES as SHAPES_CLASSES
from .shapes import PALETTE as SHAPES_PALETTE
from .shapes import generate as generate_shapes

__all__ = ['SHAPES_CLASSES', 'SHAPES_PALETTE', 'generate_shapes']
