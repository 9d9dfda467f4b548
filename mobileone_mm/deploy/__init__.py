from .analysis import (LinearClassifier, count_macs, count_params,
                       latency_stats, measure_latency, torch_latency)
from .reparameterize import count_unfused, reparameterize

__all__ = ['LinearClassifier', 'count_macs', 'count_params', 'count_unfused', 'latency_stats',
           'measure_latency', 'reparameterize', 'torch_latency']
