from .analysis import (LinearClassifier, count_macs, count_params,
                       latency_stats, measure_latency, torch_latency)
from .reparameterize import count_unfused, reparameterize
from .export import DeployCheckFailed, deploy, format_report

__all__ = ['DeployCheckFailed', 'deploy', 'format_report',
           'LinearClassifier', 'count_macs', 'count_params', 'count_unfused', 'latency_stats',
           'measure_latency', 'reparameterize', 'torch_latency']
