"""The training loop: epochs over any iterable of batches, with callbacks around each epoch and step.

A Ray Train worker and ``python -m pixelgan`` call the same ``fit``; what differs (data
sharding, metric reporting, checkpoint storage) comes in as the batches and the callbacks.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from pixelgan.clusters import category_diagnostics, ink, validation_error
from pixelgan.data import Batch
from pixelgan.decoder import negative_log_likelihood
from pixelgan.model import PixelGAN
from pixelgan.objective import AdversarialGame, Optimizers, train_step

VALIDATION_ROWS = 256  # images a pass through the encoder in training mode normalises together


class Callback:
    """Hooks around each epoch and batch; ``epoch`` counts from 1, ``batch`` from 0."""

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def on_batch_end(self, epoch: int, batch: int) -> None:
        pass

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        pass

    def on_stop_within_epoch(self, progress: EpochProgress) -> None:
        """Called when ``fit`` stops part-way through an epoch (``progress`` says how far)."""

    def should_stop(self) -> bool:
        """Asked after every step: True ends ``fit`` there, part-way through its epoch (even
        after its last step: the epoch's end, validation included, is then the resumed run's)."""
        return False


class PrintProgress(Callback):
    """One line per epoch with the main losses and the time it took."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch_time_s")
        print(f"epoch {epoch}/{self.epochs} {shown} ({metrics['epoch_time_s']:.1f}s)", flush=True)


class TimeLimit(Callback):
    """Ends the run at the first step that ends more than ``seconds`` after this was made
    (set-up included), so a run longer than one sitting stops within a step of its limit and
    a checkpoint (``on_stop_within_epoch``) resumes it exactly. One process only: data-parallel
    workers would each stop at their own step."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds
        self.stopped_in: tuple[int, int] | None = None  # (epoch, batches done)

    def on_batch_end(self, epoch: int, batch: int) -> None:
        if self.stopped_in is None and time.perf_counter() > self.deadline:
            self.stopped_in = (epoch, batch + 1)

    def should_stop(self) -> bool:
        return self.stopped_in is not None


@dataclass
class EpochProgress:
    """How far an epoch has got: the steps done and the running sums of their losses.

    A checkpoint written part-way through an epoch holds it; ``train_one_epoch`` given it
    passes over the batches done (drawing them again, which costs a read but no step, since
    the random state is set back afterwards) and goes on from the next, so that a stopped and
    resumed epoch steps on exactly the batches of an unbroken one.
    """

    epoch: int
    batches: int = 0
    # float64 tensors where the losses are, so a GPU step never waits on them: a bf16 or
    # float32 running sum stops counting long before an epoch ends
    sums: dict[str, Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # spent on it before a stop
    complete: bool = False

    def add(self, losses: dict[str, Tensor]) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0.0) + value.detach().double()
            self.counts[name] = self.counts.get(name, 0) + 1
        self.batches += 1

    def means(self) -> dict[str, float]:
        return {name: float(total) / self.counts[name] for name, total in self.sums.items()}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _to(batch: Batch, device: torch.device | str) -> Batch:
    return Batch(*(t.to(device, non_blocking=True) for t in batch))


def _forever(batches: Iterable[Batch]) -> Iterator[Batch]:
    while True:
        yield from batches


def _skip(batches: Iterator[Batch], count: int) -> None:
    next(itertools.islice(batches, count, count), None)


def train_one_epoch(
    model: PixelGAN,
    optimizers: Optimizers,
    batches: Iterable[Batch],
    device: torch.device | str,
    epoch: int = 1,
    callbacks: Sequence[Callback] = (),
    labelled_batches: Iterable[Batch] | None = None,
    game: AdversarialGame = AdversarialGame(),
    progress: EpochProgress | None = None,
) -> EpochProgress:
    """Run every phase on every batch, from where ``progress`` left off; stop early when a
    callback asks. The epoch's mean losses are ``progress.means()`` once it is complete.

    ``labelled_batches`` (semi-supervised runs) is read in a loop beside ``batches``, one
    labelled batch per step, restarting at every epoch so that a resumed run draws the same
    (its order must be a function of the epoch, not of the global random state).
    """
    model.train()
    progress = progress if progress is not None else EpochProgress(epoch)
    stopped_at = torch.get_rng_state()  # a resumed epoch's: where the stopped one was
    train = iter(batches)
    labelled = None if labelled_batches is None else _forever(labelled_batches)
    if progress.batches:  # resumed part-way: pass over the batches done, then draw as the stopped epoch would have
        _skip(train, progress.batches)
        if labelled is not None:
            _skip(labelled, progress.batches)
        torch.set_rng_state(stopped_at)
    for index, batch in enumerate(train, start=progress.batches):
        extra = None if labelled is None else _to(next(labelled), device)
        progress.add(train_step(model, optimizers, _to(batch, device), extra, game))
        for callback in callbacks:
            callback.on_batch_end(epoch, index)
        if any(callback.should_stop() for callback in callbacks):
            break
    else:
        progress.complete = True
    return progress


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _sum_over_workers(values: Tensor) -> Tensor:
    """``values`` summed over the workers, back on the CPU. NCCL reduces only GPU tensors, so
    under it they travel through this worker's GPU; gloo reduces them where they are."""
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else values.device
    summed = values.to(device)
    dist.all_reduce(summed)
    return summed.cpu()


def _mean_over_workers(metrics: dict[str, float]) -> dict[str, float]:
    """Average each metric over the data-parallel workers (a no-op in one process)."""
    if not _distributed() or not metrics:
        return metrics
    names = sorted(metrics)
    values = _sum_over_workers(torch.tensor([metrics[name] for name in names], dtype=torch.float64))
    return dict(zip(names, (values / dist.get_world_size()).tolist()))


def _probabilities(model: PixelGAN, images: Tensor) -> Tensor:
    logits = model.encoder(images).logits
    assert logits is not None  # a prior with categories
    return logits.float().softmax(dim=1).cpu()


@contextlib.contextmanager
def training_mode(module: torch.nn.Module) -> Iterator[None]:
    """``module`` in training mode for a look at what training sees (batch statistics, input
    corruption), then back in the mode it was in, its buffers (BatchNorm's running
    statistics) as they were."""
    kept, was_training = [buffer.clone() for buffer in module.buffers()], module.training
    module.train()
    try:
        yield
    finally:
        for buffer, value in zip(module.buffers(), kept):
            buffer.copy_(value)
        module.train(was_training)


def row_chunks(n: int, size: int) -> list[slice]:
    """``n`` rows in runs of ``size``, the last one joined to the one before where it would
    hold a single row: BatchNorm in training mode cannot normalise one row."""
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [slice(start, end) for start, end in zip(starts, [*starts[1:], n])]


def _interleaved(part: Tensor) -> Tensor:
    """Every worker's strided shard of a split's rows (worker r holds rows r, r + world, ...:
    ``Run``'s validation shards) back in the split's order; ``part`` itself in one process."""
    if not _distributed():
        return part
    parts: list[Tensor | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, part.cpu())
    world = len(parts)
    order = torch.cat([torch.arange(len(p)) * world + rank for rank, p in enumerate(parts) if p is not None])
    return torch.cat([p for p in parts if p is not None])[order.argsort()]


@torch.no_grad()
def evaluate(
    model: PixelGAN, batches: Iterable[Batch], device: torch.device | str, classify: bool = False, diagnose: bool = True
) -> dict[str, float]:
    """NLL in nats per image given each image's own code and another image's, how the
    adversarial game stands, and for a prior with categories what they split by.

    ``nll`` is -log p(x | f(x, n)). ``nll_other_code`` pairs each image with the code of the
    next image in its batch: the gap between the two is how much the decoder uses z, the
    thing a PixelCNN decoder is known to learn to do without. ``d_accuracy`` is the share of
    the discriminator's calls that are right on these codes and as many prior samples (0.5:
    it cannot tell them apart; 1: it wins outright). For a prior with categories, with
    ``diagnose`` (a validation split, whose labels may name clusters): ``top_probability``,
    the mean largest probability of q(y|x) (1: one-hot codes, as the prior's),
    ``error_paper_rule``, the clustering error within the split
    (``clusters.validation_error``, from one noise draw), and ``clusters.category_diagnostics``.
    With ``classify`` (a semi-supervised model, whose categories are the classes) ``error``
    is the categorical head's error against the labels, from one noise draw: an epoch-by-epoch
    view of the score that the run's end measures on the test split. Under data parallelism
    the batches are each worker's strided shard of the split. Its random draws are its own:
    training after it draws as it would have without it.
    """
    with torch.random.fork_rng(devices=[device] if torch.device(device).type == "cuda" else []):
        return _evaluate(model, batches, device, classify, diagnose and model.config.prior.categories > 0)


def _evaluate(model: PixelGAN, batches: Iterable[Batch], device: torch.device | str, classify: bool,
              diagnose: bool) -> dict[str, float]:
    model.eval()
    generator = torch.Generator().manual_seed(0)  # the prior samples D is scored on, apart from training's draws
    totals = torch.zeros(4, dtype=torch.float64)  # own-code NLL, other-code NLL, images, D's right calls
    probs, images, labels = [], [], []
    for batch in batches:
        x = batch.images.to(device)
        encoded = model.encoder(x)
        own = negative_log_likelihood(model.decoder(x, encoded.code), x).sum()
        other = negative_log_likelihood(model.decoder(x, encoded.code.roll(1, dims=0)), x).sum()
        prior = model.prior.sample(len(x), generator).to(device)
        calls = model.discriminator(torch.cat([prior, encoded.code.to(prior.dtype)])).float()  # [2B, parts]
        right = (calls[: len(x)] > 0).float().mean(1).sum() + (calls[len(x) :] < 0).float().mean(1).sum()
        totals += torch.tensor([float(own), float(other), len(x), float(right)], dtype=torch.float64)
        if diagnose and encoded.logits is not None:
            probs.append(encoded.logits.float().softmax(dim=1).cpu())
            images.append(batch.images)
            labels.append(batch.labels)
    if _distributed():  # each worker saw its own shard
        totals = _sum_over_workers(totals)
    count = max(float(totals[2]), 1.0)
    metrics = {"nll": float(totals[0]) / count, "nll_other_code": float(totals[1]) / count,
               "d_accuracy": float(totals[3]) / (2 * count)}
    if diagnose:
        categories = model.config.prior.categories
        shard = torch.cat(images) if images else torch.empty(0)
        q = torch.cat(probs) if probs else torch.empty(0, categories)
        q_train = torch.empty(0, categories)
        if len(shard):
            with training_mode(model.encoder):
                q_train = torch.cat([_probabilities(model, shard[rows].to(device)) for rows in row_chunks(len(shard), VALIDATION_ROWS)])
        q, q_train = _interleaved(q), _interleaved(q_train)
        y = _interleaved(torch.cat(labels) if labels else torch.empty(0, dtype=torch.long))
        metrics |= {"top_probability": float(q.max(dim=1).values.mean()), "error_paper_rule": validation_error(q, y)}
        metrics |= category_diagnostics(q, y, _interleaved(ink(shard) if len(shard) else torch.empty(0, dtype=torch.float64)), q_train)
        if classify:
            metrics["error"] = float((q.argmax(dim=1) != y).double().mean())
    return metrics


def fit(
    model: PixelGAN,
    optimizers: Optimizers,
    train_batches: Iterable[Batch],
    *,
    epochs: int,
    start_epoch: int = 0,
    val_batches: Iterable[Batch] | None = None,
    labelled_batches: Iterable[Batch] | None = None,
    callbacks: Sequence[Callback] = (),
    device: torch.device | str = "cpu",
    game: AdversarialGame = AdversarialGame(),
    within: EpochProgress | None = None,
) -> dict[str, float]:
    """Train from epoch ``start_epoch + 1`` (from where ``within`` left it, if it is that
    epoch's) to ``epochs``; return the last complete epoch's metrics. The ``game``'s softening
    falls linearly from whole in the first epoch to none in the last (a one-epoch run, or a
    game ``held``, keeps it whole).

    ``train_batches`` is iterated once per epoch, so it must be re-iterable (a DataLoader).
    """
    if within is not None and within.epoch != start_epoch + 1:
        raise ValueError(f"progress part-way through epoch {within.epoch} resumes that epoch, not epoch {start_epoch + 1}")
    within = copy.deepcopy(within)  # it grows as the epoch goes on; the caller's stays as it was
    metrics: dict[str, float] = {}
    for epoch in range(start_epoch + 1, epochs + 1):
        for callback in callbacks:
            callback.on_epoch_start(epoch)
        started = time.perf_counter()
        remaining = (epochs - epoch) / (epochs - 1) if epochs > 1 else 1.0
        progress = train_one_epoch(model, optimizers, train_batches, device, epoch, callbacks, labelled_batches,
                                   game.softened(remaining), within if epoch == start_epoch + 1 else None)
        if not progress.complete:
            progress.seconds += time.perf_counter() - started
            for callback in callbacks:
                callback.on_stop_within_epoch(progress)
            break
        metrics = _mean_over_workers(progress.means())
        if val_batches is not None:
            classify = labelled_batches is not None
            metrics |= {f"val_{k}": v for k, v in evaluate(model, val_batches, device, classify).items()}
        metrics["epoch_time_s"] = progress.seconds + time.perf_counter() - started
        for callback in callbacks:
            callback.on_epoch_end(epoch, metrics)
    return metrics
