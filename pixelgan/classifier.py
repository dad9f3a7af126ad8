"""The small CNN classifier that sample-quality scores are measured with.

An Inception network knows nothing of 28x28 binarised digits; a classifier trained on the
same training split, in the same data form as the samples, is the usual stand-in for MNIST.
Its penultimate features give a Fréchet distance, its predictions a confidence and a
label-histogram entropy (the Inception-score analogue). Its own test accuracy is reported
beside them: the scores mean little if it is low.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelgan.data import to_signed_unit
from pixelgan.evaluation import frechet_distance
from pixelgan.io import atomic_path


class Classifier(nn.Module):
    def __init__(self, channels: int, height: int, width: int, classes: int, features: int = 128) -> None:
        super().__init__()
        self.shape = (channels, height, width)
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * (height // 4) * (width // 4), features), nn.ReLU(),
        )
        self.out = nn.Linear(features, classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer features [B, features] of data-form images."""
        return self.body(to_signed_unit(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.features(x))


def save_classifier(path: str | os.PathLike[str], classifier: Classifier, record: dict[str, Any]) -> None:
    """The classifier's weights and ``record`` (shape, classes, data form), written atomically."""
    with atomic_path(path) as tmp:
        torch.save({"weights": classifier.state_dict(), **record}, tmp)


def load_classifier(path: str | os.PathLike[str]) -> tuple[Classifier, dict[str, Any]]:
    """The classifier and its record (data form, classes), as ``save_classifier`` wrote them."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    classifier = Classifier(*state["shape"], classes=state["classes"])
    classifier.load_state_dict(state["weights"])
    return classifier.eval(), state


def train_classifier(
    classifier: Classifier, images: Tensor, labels: Tensor, *, epochs: int = 5, batch_size: int = 64, seed: int = 0
) -> list[float]:
    """Adam on the cross-entropy; returns each epoch's mean loss."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    classifier.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(images), batch_size):
            rows = order[start : start + batch_size]
            loss = F.cross_entropy(classifier(images[rows]), labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        losses.append(total / len(images))
    return losses


@torch.no_grad()
def predict(classifier: Classifier, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """(class probabilities [N, classes], penultimate features [N, features])."""
    classifier.eval()
    probs, features = [], []
    for start in range(0, len(images), batch_size):
        f = classifier.features(images[start : start + batch_size])
        features.append(f)
        probs.append(classifier.out(f).softmax(dim=1))
    return torch.cat(probs), torch.cat(features)


def sample_quality(
    classifier: Classifier, samples: Tensor, test_images: Tensor, sample_categories: Tensor | None = None
) -> dict[str, float]:
    """How digit-like and how varied samples are, as the classifier sees them.

    - ``frechet_distance``: between the features of the samples and of the test images;
    - ``confidence``: the mean of the classifier's top probability on the samples;
    - ``label_entropy``: entropy (nats) of the histogram of predicted labels, ln(classes)
      when every class is drawn equally often;
    - ``classifier_score``: exp(E KL(p(y|x) || p(y))), the Inception score's analogue;
    - ``category_purity`` (when ``sample_categories`` gives each sample's prior category):
      the mean over categories of the share of its samples with its commonest label.
    """
    probs, features = predict(classifier, samples)
    _, test_features = predict(classifier, test_images)
    marginal = probs.mean(0)
    predicted = probs.argmax(dim=1)
    histogram = torch.bincount(predicted, minlength=probs.shape[1]).double() / len(predicted)
    entropy = -(histogram[histogram > 0] * histogram[histogram > 0].log()).sum()
    kl = (probs * (probs.clamp(min=1e-12).log() - marginal.clamp(min=1e-12).log())).sum(dim=1).mean()
    scores = {
        "frechet_distance": frechet_distance(features, test_features),
        "confidence": float(probs.max(dim=1).values.mean()),
        "label_entropy": float(entropy),
        "classifier_score": math.exp(float(kl)),
    }
    if sample_categories is not None:
        shares = [
            float(torch.bincount(predicted[sample_categories == k]).max()) / int((sample_categories == k).sum())
            for k in sample_categories.unique()
        ]
        scores["category_purity"] = sum(shares) / len(shares)
    return scores
