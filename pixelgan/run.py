"""One training run, built the same way in one process and in every Ray Train worker.

``python -m pixelgan`` and the Ray Train worker (``pipeline/ray_train.py``) both build a ``Run``
from a ``RunSpec`` and the prepared splits and call ``Run.fit``; only their callbacks
differ (a checkpoint file and a time limit in one process, reports to Ray Train in a
worker) and, in a worker, each part's DistributedDataParallel wrapper. Everything that
decides the numbers is here, once: the initial weights (seeded alike on every worker), each
worker's own noise, the labelled rows of the run's seed, each epoch's permutation (a
DistributedSampler, of one replica in one process) and the batches. So one process and a
one-worker Ray job train the same model from the same spec.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from pixelgan.checkpoint import resume, resume_within, set_rng_state
from pixelgan.config import RunSpec, run_identity
from pixelgan.data import ImageDataset
from pixelgan.data.parquet import Splits
from pixelgan.data.splits import labelled_rows
from pixelgan.engine import Callback, PrintProgress, fit
from pixelgan.model import PixelGAN
from pixelgan.objective import AdversarialGame, build_optimizers
from pixelgan.schedule import LearningRateSchedule
from pixelgan.speed import accelerated, resolve

VALIDATION_BATCH = 256


def tensor_over(array: Any) -> torch.Tensor:
    """A tensor sharing ``array``'s memory. Ray's object store hands its arrays over read-only,
    on which torch warns that a write would be undefined; no dataset here writes its images."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        return torch.from_numpy(array)


def datasets(spec: RunSpec, splits: Splits) -> tuple[ImageDataset, ImageDataset, ImageDataset | None]:
    """Training, validation, and (semi-supervised runs) the labelled rows of the training split,
    drawn by the run's seed, the same on every worker."""
    train, validation = splits.train, splits.validation
    likelihood = spec.model.decoder.likelihood

    def dataset(images: Any, labels: Any, binarize: str, **moves: float) -> ImageDataset:
        return ImageDataset(tensor_over(images), tensor_over(labels), likelihood=likelihood, binarize=binarize, **moves)

    labelled = None
    if spec.train.semi_supervised:
        rows = labelled_rows(train.labels, spec.dataset, spec.train.seed)
        labelled = dataset(train.images[rows], train.labels[rows], spec.train.binarize,
                           shift=spec.train.label_shift, rotation=spec.train.label_rotation)
    return (
        dataset(train.images, train.labels, spec.train.binarize),
        dataset(validation.images, validation.labels, "threshold"),
        labelled,
    )


class SetSamplerEpoch(Callback):
    """A new permutation every epoch (DistributedSampler shuffles by seed + epoch)."""

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler = sampler

    def on_epoch_start(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


# How the labelled batches' order is drawn; a run that drew it otherwise (from the global random
# state, before commit 12b721c) cannot be continued exactly, so it is recorded with every run.
LABELLED_ORDER = "seed-epoch-rank"


def run_record(spec: RunSpec) -> dict[str, Any]:
    """What every checkpoint records of its run, in one process or on Ray: its identity and
    the way its labelled batches were ordered, so a resume is checked and a script reads any."""
    return {"spec": run_identity(spec), "labelled_order": LABELLED_ORDER}


class SeedLabelledOrder(Callback):
    """The labelled batches' order drawn afresh every epoch from (seed, epoch, rank) alone,
    as the sampler's is, so a run stopped part-way through an epoch resumes onto it."""

    def __init__(self, generator: torch.Generator, seed: int, rank: int) -> None:
        self.generator, self.seed, self.rank = generator, seed, rank

    def on_epoch_start(self, epoch: int) -> None:
        self.generator.manual_seed((self.seed * 1_000_003 + epoch) * 1_000 + self.rank)


class Run:
    """The model, optimizers and batches of ``spec`` for worker ``rank`` of ``world``
    (0 of 1 in one process); ``resume`` then ``fit`` train it."""

    def __init__(self, spec: RunSpec, splits: Splits, device: torch.device, rank: int = 0, world: int = 1) -> None:
        batch_size = spec.train.batch_size // world
        self.spec, self.device, self.rank = spec, device, rank
        self.speed = resolve(spec.train, device)  # here, not in a driver: a cluster can mix machine kinds
        torch.manual_seed(spec.train.seed)  # the same initial weights on every worker
        self.model = PixelGAN(spec.model).to(device)
        self.optimizers = build_optimizers(self.model, spec.train)
        torch.manual_seed(spec.train.seed * 1000 + rank)  # each worker its own noise and draws
        self.start_epoch, self.history, self.within = 0, [], None

        train_set, validation_set, labelled_set = datasets(spec, splits)
        self.sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True,
                                          seed=spec.train.seed, drop_last=True)
        self.train_batches = DataLoader(train_set, batch_size=batch_size, sampler=self.sampler, drop_last=True)
        self.labelled_batches, self.labelled_order = None, torch.Generator()
        if labelled_set is not None:  # every worker draws its own labelled batches from all labelled rows
            self.labelled_batches = DataLoader(labelled_set, batch_size=min(batch_size, len(labelled_set)),
                                               shuffle=True, drop_last=True, generator=self.labelled_order)
        shard = Subset(validation_set, range(rank, len(validation_set), world))
        self.validation_batches = DataLoader(shard, batch_size=VALIDATION_BATCH)

    def resume(self, state: dict[str, Any], own_rng: dict[str, Any] | None = None) -> None:
        """Go on from a checkpoint: weights, optimizers, epochs and curves, and how far an epoch
        stopped part-way got; the random state ``own_rng`` of this worker where the checkpoint
        has one for it, else the state's."""
        self.start_epoch, self.history = resume(state, self.model, self.optimizers), list(state["history"])
        self.within = resume_within(state)
        if own_rng is not None:
            set_rng_state(own_rng)

    def fit(self, callbacks: Sequence[Callback] = (), wrap: Callable[[nn.Module], nn.Module] | None = None) -> dict[str, float]:
        """Train the remaining epochs; ``wrap`` each part first (DDP in a Ray worker)."""
        model = self.model.with_parts(wrap) if wrap is not None else self.model
        own: list[Callback] = [SetSamplerEpoch(self.sampler), SeedLabelledOrder(self.labelled_order, self.spec.train.seed, self.rank),
                               LearningRateSchedule(self.optimizers, self.spec.train)]
        if self.rank == 0:
            own.append(PrintProgress(self.spec.train.epochs))
        return fit(
            accelerated(model, self.speed, self.device), self.optimizers, self.train_batches,
            epochs=self.spec.train.epochs, start_epoch=self.start_epoch, val_batches=self.validation_batches,
            labelled_batches=self.labelled_batches, callbacks=[*own, *callbacks], device=self.device,
            game=AdversarialGame.of(self.spec.train), within=self.within,
        )
