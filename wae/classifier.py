"""A small MNIST classifier whose features give a fast Fréchet distance and mode coverage.

The weights ship in ``wae/assets/mnist_classifier.pt`` (under 1 MB) with their test accuracy in
``mnist_classifier.json``; ``python -m wae.classifier`` retrains them reproducibly (fixed seed,
one thread, about two minutes on a CPU) and rewrites both files.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import write_atomic
from .config import UserError
from .data import epoch_order, load_mnist, to_model_range

ASSETS = Path(__file__).resolve().parent / "assets"
WEIGHTS = ASSETS / "mnist_classifier.pt"
FEATURES = 128


class Classifier(nn.Module):
    """Three 3x3 conv + max-pool stages (32, 64, 128 channels), a 128-unit feature layer and
    10 logits. Input (n, 1, 28, 28) in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(128 * 3 * 3, FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(n, 1, 28, 28) -> (features (n, 128), logits (n, 10))."""
        features = self.body(x)
        return features, self.head(features)


@torch.no_grad()
def features_and_probs(model: Classifier, images: Tensor, chunk: int = 1000) -> tuple[Tensor, Tensor]:
    """Features (n, 128) and class probabilities (n, 10) of images (n, 1, 28, 28) in [0, 1].
    The images go in channels_last, as :func:`load_classifier`'s weights are: twice as fast on
    CPU as the default layout (0.27 against 0.53 s for 1,000 images on one core)."""
    model.eval()
    feats, probs = [], []
    for i in range(0, len(images), chunk):
        f, logits = model(images[i : i + chunk].float().contiguous(memory_format=torch.channels_last))
        feats.append(f.float())  # float32 under a caller's autocast too
        probs.append(logits.float().softmax(1))
    return torch.cat(feats), torch.cat(probs)


def load_classifier() -> Classifier:
    """The shipped classifier, in eval mode: a new module on every call (the caller may move or
    change it), built from weights read from disk once per version of the file; UserError when
    the weights are missing."""
    if not WEIGHTS.is_file():
        raise UserError(f"classifier weights missing at {WEIGHTS}; run: python -m wae.classifier")
    stat = WEIGHTS.stat()
    model = Classifier()
    model.load_state_dict(_stored_weights(str(WEIGHTS), stat.st_mtime_ns, stat.st_size))
    return model.to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]  # not in the stubs


@functools.lru_cache(maxsize=2)
def _stored_weights(path: str, mtime_ns: int, size: int) -> dict[str, Tensor]:
    # keyed on the file's time and size too, so that rewritten weights are read again;
    # load_state_dict copies from these, so no caller can change them
    return {k: v.float() for k, v in torch.load(path, weights_only=True).items()}


def train_classifier(epochs: int = 3, seed: int = 0, log: bool = True) -> tuple[Classifier, float]:
    """Train the classifier on the embedded MNIST; returns it and its test accuracy."""
    torch.manual_seed(seed)
    data = load_mnist()
    assert data.train_labels is not None
    model = Classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch_size, steps_per_epoch = 100, len(data.train) // 100
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
    start = time.perf_counter()
    accuracy = 0.0
    for epoch in range(epochs):
        model.train()
        order = epoch_order(len(data.train), seed, epoch)
        for b in range(steps_per_epoch):
            index = order[b * batch_size : (b + 1) * batch_size]
            _, logits = model(to_model_range(data.train[index]))
            loss = F.cross_entropy(logits, data.train_labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        accuracy = test_accuracy(model)
        if log:
            print(f"epoch {epoch + 1}: test accuracy {accuracy:.4f} ({time.perf_counter() - start:.0f} s)")
    return model, accuracy


def test_accuracy(model: Classifier) -> float:
    """Accuracy on the 10,000 MNIST test images."""
    data = load_mnist()
    assert data.test_labels is not None
    _, probs = features_and_probs(model, to_model_range(data.test))
    return (probs.argmax(1) == data.test_labels).float().mean().item()


if __name__ == "__main__":
    torch.set_num_threads(1)  # reductions in one fixed order: the same weights on every run
    model, accuracy = train_classifier()
    ASSETS.mkdir(exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.half() for k, v in model.state_dict().items()}, buffer)
    write_atomic(WEIGHTS, buffer.getbuffer())
    shipped = load_classifier()
    info = {
        "sha256": hashlib.sha256(WEIGHTS.read_bytes()).hexdigest(),
        "test_accuracy": test_accuracy(shipped),
        "parameters": sum(p.numel() for p in model.parameters()),
        "stored_as": "float16",
        "trained_by": "python -m wae.classifier (seed 0, 3 epochs, 1 thread)",
    }
    write_atomic(ASSETS / "mnist_classifier.json", json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))
