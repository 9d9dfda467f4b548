"""The plain classifier that MobileOne's published figures describe."""
import torch
import torch.nn as nn


class LinearClassifier(nn.Module):
    """Backbone + global average pool + linear: ml-mobileone's classifier,
    the model its published parameter counts and MACs describe."""

    def __init__(self, backbone: nn.Module, num_classes: int = 1000) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.out_channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x)[-1].mean((2, 3)))
