"""Real data that needs no download: scikit-learn's bundled handwritten digits.

scikit-learn ships 1,797 8x8 digit images (0-16 grey levels) inside its wheel
(``sklearn.datasets.load_digits``, BSD-3). Here they are scaled to [0, 1] and
upsampled to ``size`` x ``size`` so that image grids and small CNNs look and
behave like MNIST, with no network access.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["digits", "digits_loader"]


def digits(size: int = 28) -> TensorDataset:
    """``(images [N, 1, size, size] float32 in [0, 1], labels [N] int64)``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the digits data comes with scikit-learn: pip install 'acc[demo]'") from exc
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    return TensorDataset(images, labels)


def digits_loader(
    batch_size: int = 128, *, size: int = 28, shuffle: bool = True, seed: int = 0
) -> DataLoader[tuple[torch.Tensor, ...]]:
    """A DataLoader over ``digits(size)`` (reproducible shuffling with ``seed``; drops the last partial batch)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(digits(size), batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=True)
