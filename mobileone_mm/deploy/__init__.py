from .complexity import count_macs, count_params
from .export import DeployCheckFailed, DeployOptions, deploy
from .latency import latency_stats, measure_latency, torch_latency
from .report import format_report
from .fusion import count_unfused, fuse_checkpoint, reparameterize

__all__ = ['DeployCheckFailed', 'DeployOptions', 'deploy', 'format_report',
           'count_macs', 'count_params', 'count_unfused', 'fuse_checkpoint',
           'latency_stats', 'measure_latency', 'reparameterize',
           'torch_latency']
from .quantization.coreml_compress import compress_coreml
from .quantization.onnxruntime_int8 import count_quantized_ops, quantize_onnx
from .quantization.pipeline import QuantizeOptions, quantize_config

__all__ += ['QuantizeOptions', 'compress_coreml', 'count_quantized_ops',
            'quantize_config', 'quantize_onnx']
