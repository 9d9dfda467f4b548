from .convert import (FORMATS, ConversionError, convert, convert_file,
                      detect_format, load_file, unwrap, validate)

__all__ = ['FORMATS', 'ConversionError', 'convert', 'convert_file',
           'detect_format', 'load_file', 'unwrap', 'validate']
