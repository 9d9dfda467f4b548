from .fusion import fuse_conv_bn, identity_kernel, pad_kernel

__all__ = ['fuse_conv_bn', 'identity_kernel', 'pad_kernel']
