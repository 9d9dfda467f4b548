from .mobileone import MobileOne, MobileOneBlock, SqueezeExcite

__all__ = ['MobileOne', 'MobileOneBlock', 'SqueezeExcite']
