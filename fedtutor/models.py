"""The models of the course.

``MLP2NN`` and ``CNN`` are the two MNIST models of McMahan et al. 2017 ("Communication-
Efficient Learning of Deep Networks from Decentralized Data"), with the exact layer sizes
of the paper so that parameter counts (and so communication per round) match it.
``TinyLinear`` is a one-layer model for the toy datasets of the workers notebooks.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CNN", "MLP2NN", "TinyLinear", "build_model", "count_parameters"]


class MLP2NN(nn.Module):
    """The paper's "2NN": 784 -> 200 -> 200 -> 10 with ReLUs; 199,210 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),  # (B, 1, 28, 28) -> (B, 784)
            nn.Linear(784, 200),
            nn.ReLU(),
            nn.Linear(200, 200),
            nn.ReLU(),
            nn.Linear(200, 10),  # (B, 10) logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    """The paper's CNN: two 5x5 convs (32, 64 channels) each followed by 2x2 max pooling,
    a 512-unit fully connected layer and a 10-way output; 1,663,370 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=5, padding=2),  # (B, 32, 28, 28): padding keeps 28x28
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, kernel_size=5, padding=2),  # (B, 64, 14, 14)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, 7, 7)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, 3136)
            nn.Linear(64 * 7 * 7, 512),
            nn.ReLU(),
            nn.Linear(512, 10),  # (B, 10) logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class TinyLinear(nn.Module):
    """A single linear layer, ``in_features -> out_features``: small enough to print its weights."""

    def __init__(self, in_features: int = 2, out_features: int = 1) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)  # (B, in) -> (B, out)


MODELS = {"2nn": MLP2NN, "cnn": CNN}


def build_model(name: str) -> nn.Module:
    """``build_model("cnn")`` or ``build_model("2nn")``, with a clear error for anything else."""
    try:
        return MODELS[name.lower()]()
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.") from None


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (what a client uploads each round, in floats)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
