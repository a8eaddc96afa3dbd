"""The vision lab's PyTorch models (the notebook's face classifier and DB-VAE), inference and FGSM."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

IMAGE_SIZE = 64
BATCH_SIZE = 128
FGSM_EPSILONS = (1, 2, 4, 8)  # in units of 1/255


class ConvBlock(nn.Module):
    """Conv -> ReLU -> BatchNorm, as in the lab notebook (so the state_dict keys are conv.* and bn.*)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=padding)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.relu(self.conv(x)))


def make_standard_classifier(n_filters: int, n_outputs: int = 1) -> nn.Sequential:
    """The notebook's standard CNN: 64x64x3 in, four stride-2 blocks down to 4x4, then two dense layers."""
    n = n_filters
    side = IMAGE_SIZE // 16
    return nn.Sequential(
        ConvBlock(3, n, kernel_size=5, stride=2, padding=2),
        ConvBlock(n, 2 * n, kernel_size=5, stride=2, padding=2),
        ConvBlock(2 * n, 4 * n, kernel_size=3, stride=2, padding=1),
        ConvBlock(4 * n, 6 * n, kernel_size=3, stride=2, padding=1),
        nn.Flatten(),
        nn.Linear(side * side * 6 * n, 512),
        nn.ReLU(),
        nn.Linear(512, n_outputs),
    )


class FaceDecoder(nn.Module):
    """The DB-VAE's decoder from the notebook; the grader never runs it, it only gives the saved keys their shape."""

    def __init__(self, latent_dim: int, n_filters: int):
        super().__init__()
        n = n_filters
        self.n_filters = n
        self.linear = nn.Sequential(nn.Linear(latent_dim, 4 * 4 * 6 * n), nn.ReLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(6 * n, 4 * n, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(4 * n, 2 * n, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * n, n, 5, stride=2, padding=2, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(n, 3, 5, stride=2, padding=2, output_padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.linear(z).view(-1, 6 * self.n_filters, 4, 4)
        return torch.sigmoid(self.deconv(x))


class DBVAE(nn.Module):
    """The notebook's debiasing VAE: the encoder's output 0 is the face logit, then latent means and log-variances."""

    def __init__(self, latent_dim: int, n_filters: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = make_standard_classifier(n_filters, 2 * latent_dim + 1)
        self.decoder = FaceDecoder(latent_dim, n_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[:, 0]


def face_logit_model(architecture: str, n_filters: int, latent_dim: int | None, tensors: dict) -> nn.Module:
    """Build the classifier of a checked artifact and load its weights; returns a model giving one logit per image."""
    if architecture == "standard":
        model = make_standard_classifier(n_filters, 1)
        model.load_state_dict(tensors, strict=True)
    else:
        model = make_standard_classifier(n_filters, 2 * latent_dim + 1)
        encoder = {k.removeprefix("encoder."): v for k, v in tensors.items() if k.startswith("encoder.")}
        model.load_state_dict(encoder, strict=True)
    return _FirstOutput(model).eval()


class _FirstOutput(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[:, 0]


def predict_logits(model: nn.Module, images: np.ndarray, *, device: str, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Face logits of float32 images [N, 3, 64, 64] in [0, 1], in eval mode, in fixed-size batches."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images[start : start + batch_size]).to(device, dtype=torch.float32)
            out.append(model(batch).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


def fgsm_accuracy(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    device: str,
    epsilons: tuple[int, ...] = FGSM_EPSILONS,
    batch_size: int = BATCH_SIZE,
) -> dict[int, float]:
    """Accuracy at the model's own 0.5 threshold after a one-step FGSM attack of each size eps/255."""
    model.eval()
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    correct = dict.fromkeys(epsilons, 0)
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).to(device, dtype=torch.float32)
        y = torch.from_numpy(labels[start : start + batch_size].astype(np.float32)).to(device)
        x.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(model(x), y)
            (grad,) = torch.autograd.grad(loss, x)
        step = grad.sign()
        with torch.inference_mode():
            for eps in epsilons:
                adversarial = (x.detach() + (eps / 255.0) * step).clamp(0.0, 1.0)
                predicted = model(adversarial) > 0
                correct[eps] += int((predicted == y.bool()).sum())
    return {eps: correct[eps] / len(images) for eps in epsilons} if len(images) else {}


def train_classifier(
    images: np.ndarray, labels: np.ndarray, *, n_filters: int, epochs: int, batch_size: int, seed: int
) -> tuple[nn.Sequential, float]:
    """Train the standard classifier on the CPU with Adam; random mirroring keeps a small set from being memorised."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    generator = torch.Generator().manual_seed(seed)
    model = make_standard_classifier(n_filters, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    x_all = torch.from_numpy(images)
    y_all = torch.from_numpy(labels.astype(np.float32))
    last = math.nan
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=generator)
        total, seen = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:  # BatchNorm needs more than one image per batch
                continue
            x = x_all[idx]
            flip = torch.rand(len(idx), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = loss_fn(model(x)[:, 0], y_all[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        last = total / max(seen, 1)
    model.eval()
    return model, round(last, 6)
