"""The training loop's bookkeeping: each epoch's order of batches, and metrics averaged over
data-parallel workers."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pipeline.params import load_params, train_spec
from pixelgan import engine
from pixelgan.data.parquet import Splits
from pixelgan.data.splits import Split
from pixelgan.run import Run
from tests.helpers import TINY_MODEL_OVERRIDES


def test_each_epoch_steps_on_its_own_seeded_permutation(digits: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every training image once an epoch (less the last partial batch), in an order drawn
    anew each epoch and the same for the same seed."""
    spec = train_spec(load_params(["dataset=digits", f"paths.data={digits.parent}", *TINY_MODEL_OVERRIDES,
                                   "train.epochs=2", "train.batch_size=10"]))
    rows = Split(np.zeros((95, 1, 8, 8), np.uint8), np.arange(95), np.arange(95))  # each label its row
    seen: list[list[int]] = []
    monkeypatch.setattr(engine, "train_step", lambda model, optimizers, batch, *rest: seen.append(batch.labels.tolist()) or {})

    def orders() -> list[list[int]]:
        seen.clear()
        Run(spec.run, Splits(rows, rows, None), torch.device("cpu")).fit()
        return [sum(seen[:9], []), sum(seen[9:], [])]

    first, second = orders()
    assert len(seen) == 18 and len(set(first)) == len(first) == 90 and len(set(second)) == 90
    assert first != sorted(first) and first != second, "shuffled, and anew each epoch"
    assert orders() == [first, second], "by the seed"


def _on_worker(rank: int, world: int, rendezvous: str, results, work) -> None:
    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=world)
    try:
        results[rank] = work(rank, world)
    finally:
        dist.destroy_process_group()


def on_two_workers(work, tmp_path: Path) -> dict:
    """``work(rank, world)`` in two spawned gloo workers (not forked: the test process may
    hold Ray's threads by now); what each returned, by rank."""
    with mp.Manager() as manager:
        results = manager.dict()
        workers = mp.start_processes(_on_worker, args=(2, f"file://{tmp_path}/rendezvous", results, work), nprocs=2,
                                     join=False, start_method="spawn")
        deadline = time.monotonic() + 300
        while not workers.join(timeout=5):
            assert time.monotonic() < deadline, "the two workers never met"
        return dict(results)


def _mean(rank: int, world: int) -> dict[str, float]:
    return engine._mean_over_workers({"loss": float(rank), "accuracy": 1.0 - rank})


def test_an_epochs_metrics_are_the_mean_over_the_workers(tmp_path: Path) -> None:
    """Two gloo workers, each its own loss: both report the mean."""
    assert on_two_workers(_mean, tmp_path) == {0: {"accuracy": 0.5, "loss": 0.5}, 1: {"accuracy": 0.5, "loss": 0.5}}


def test_validation_says_what_the_categories_split_by_and_leaves_training_as_it_was(digits: Path) -> None:
    """Each epoch's validation reports the clustering error and the diagnostics; its own
    random draws and its look at the encoder in training mode change nothing in training."""
    from pixelgan.data.parquet import read_prepared

    spec = train_spec(load_params(["dataset=digits", f"paths.data={digits.parent}", *TINY_MODEL_OVERRIDES,
                                   "train.epochs=2", "train.batch_size=32", "prior.dim=10"]))
    splits = read_prepared(digits, test=False)
    validated = Run(spec.run, splits, torch.device("cpu"))
    metrics = validated.fit()
    unvalidated = Run(spec.run, splits, torch.device("cpu"))
    unvalidated.validation_batches = None
    unvalidated.fit()
    for name, value in validated.model.state_dict().items():
        assert torch.equal(value, unvalidated.model.state_dict()[name]), name
    for name in ("val_error_paper_rule", "val_nmi_label", "val_nmi_ink", "val_ink_explained", "val_train_eval_agreement"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert 0.0 < metrics["val_batch_marginal_entropy"] <= np.log(10) and 1 <= metrics["val_categories_used"] <= 10


def test_row_chunks_never_leave_a_single_row_alone() -> None:
    for n, size in ((513, 256), (512, 256), (1, 256), (2, 1), (257, 256)):
        chunks = engine.row_chunks(n, size)
        assert [row for chunk in chunks for row in range(n)[chunk]] == list(range(n)), (n, size)
        assert all(len(range(n)[chunk]) > 1 for chunk in chunks) or n == 1, (n, size)


def _interleave(rank: int, world: int) -> list[int]:
    return engine._interleaved(torch.arange(7)[rank::world] * 10).tolist()  # the strided shard Run gives a worker


def test_validation_rows_gathered_from_the_workers_are_back_in_the_splits_order(tmp_path: Path) -> None:
    """The clustering error's halves and the entropy's runs of rows are the split's, whatever
    the number of workers."""
    assert on_two_workers(_interleave, tmp_path) == {0: list(range(0, 70, 10)), 1: list(range(0, 70, 10))}
