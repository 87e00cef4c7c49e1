"""Small models for the demo, the notebooks and the tests (CPU-friendly, seconds to train)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DigitAutoencoder", "DigitClassifier", "TinyVAE"]


class TinyVAE(nn.Module):
    """A fully connected VAE for 1 x size x size images; returns ``(recon, mu, logvar)``.

    ``broken=True`` builds the demo's deliberately broken model: the decoder's
    output is pushed far outside [0, 1] and the posterior variance explodes, so
    every loss is CRITICAL.
    """

    def __init__(self, size: int = 28, latent: int = 8, hidden: int = 256, *, broken: bool = False) -> None:
        super().__init__()
        self.size = size
        self.broken = broken
        pixels = size * size
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), nn.ReLU())
        self.to_mu = nn.Linear(hidden, latent)
        self.to_logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, pixels))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        mu, logvar = self.to_mu(h), self.to_logvar(h)
        if self.broken:
            logvar = logvar * 0 + 12.0  # a posterior far too wide: KL in the hundreds
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        logits = self.decoder(z)
        recon = torch.sigmoid(logits) if not self.broken else logits * 50.0
        return recon.view(-1, 1, self.size, self.size), mu, logvar


class DigitClassifier(nn.Module):
    """A small CNN for 1 x 28 x 28 digits; returns logits."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(x))
        return logits


class DigitAutoencoder(nn.Module):
    """A two-task model: reconstruct the digit and classify it from the same code.

    Returns ``{"recon": [B, 1, size, size] in [0, 1], "logits": [B, classes]}``,
    which ``Reconstruction()`` and ``Classification()`` read by key.
    """

    def __init__(self, size: int = 28, latent: int = 32, hidden: int = 256, classes: int = 10) -> None:
        super().__init__()
        self.size = size
        pixels = size * size
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, pixels), nn.Sigmoid())
        self.classifier = nn.Linear(latent, classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        code = self.encoder(x)
        recon = self.decoder(code).view(-1, 1, self.size, self.size)
        return {"recon": recon, "logits": self.classifier(torch.relu(code))}
