"""Reading users' MobileOne checkpoints as data and converting their keys.
``validate`` (the strict proof and ``convert_file``) needs the backbone class
and is imported from ``mobileone_mm.checkpoint.validate``: the backbone reads
its ``Pretrained`` files with this package, so the package must not import it.
"""
from .formats import (FORMATS, ConversionError, closest_variant, convert,
                      detect_format, load_file, unwrap)
from .loaders import load_from_http, load_from_local
from .mismatch import few, mismatch_summary, state_dict_mismatch
from .pretrained import backbone_state_dict, load_pretrained, read_state_dict

__all__ = ['FORMATS', 'ConversionError', 'backbone_state_dict',
           'closest_variant', 'convert', 'detect_format',
           'few', 'load_file', 'load_from_http', 'load_from_local',
           'load_pretrained', 'mismatch_summary', 'read_state_dict',
           'state_dict_mismatch', 'unwrap']
