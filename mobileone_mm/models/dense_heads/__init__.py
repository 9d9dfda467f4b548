from .ssd_head import SSDLiteHead

__all__ = ['SSDLiteHead']
