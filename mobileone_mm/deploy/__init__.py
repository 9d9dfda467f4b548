from .complexity import count_macs, count_params
from .export import DeployCheckFailed, deploy, format_report
from .latency import latency_stats, measure_latency, torch_latency
from .reparameterize import count_unfused, reparameterize

__all__ = ['DeployCheckFailed', 'deploy', 'format_report', 'count_macs',
           'count_params', 'count_unfused', 'latency_stats',
           'measure_latency', 'reparameterize', 'torch_latency']
