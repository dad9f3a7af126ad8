"""Mutation check: does the suite catch the smallest breaks that would make a result wrong?

    uv run python scripts/mutation_check.py            # every break below (about 25 minutes on 2 cores)
    uv run python scripts/mutation_check.py --only 1 5  # some of them

Each break is one edit of the library or a stage, applied in a scratch copy of the working
tree (tracked and unignored files); the tests listed beside it, which should catch it, then
run there without the Ray tests, and the copy is put back. It prints a Markdown table: a
break is caught when a test fails (pytest exit 1), missed when all pass. The "published"
column says whether the break would change a number a user would publish; all of those must
be caught. The listed tests are first run on the unbroken copy, which must pass.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Break:
    file: str
    old: str
    new: str
    what: str
    published: bool
    tests: tuple[str, ...]


T = "tests/pixelgan/"
BREAKS = [
    Break("pixelgan/objective.py", "supervised_phase(model, optimizers.supervised, labelled.images, labelled.labels)",
          "supervised_phase(model, optimizers.supervised, batch.images, batch.labels)",
          "the supervised phase fed the unlabelled batch (a label leak)", True, (T + "test_objective.py",)),
    Break("pixelgan/engine.py", "_to(next(labelled), device)", "_to(batch, device)",
          "an epoch's labelled batch is the unlabelled one", True, (T + "test_objective.py",)),
    Break("pixelgan/evaluation.py", "for split in (validation, test))", "for split in (test, validation))",
          "score_model with validation and test swapped", True, (T + "test_evaluation.py",)),
    Break("pixelgan/clusters.py", "rule(scores[exemplars], labels[exemplars])", "rule(scores, labels)",
          "the validation error's clusters named on the whole split", True, (T + "test_evaluation.py",)),
    Break("pixelgan/clusters.py", ".fit(pixels(splits.train))", ".fit(pixels(splits.test))",
          "k-means fitted on the test split", True, (T + "test_clusters.py",)),
    Break("pixelgan/run.py", "dataset(train.images, train.labels, spec.train.binarize),",
          'dataset(train.images, train.labels, "threshold"),',
          "training images thresholded, not binarised afresh", True, (T + "test_training.py",)),
    Break("pipeline/train.py",
          "    metrics = write_outputs(spec, state, trained, output)\n"
          "    storage.touch(storage.join(spec.paths.runs, run_name(spec), FINISHED))",
          "    storage.touch(storage.join(spec.paths.runs, run_name(spec), FINISHED))\n"
          "    metrics = write_outputs(spec, state, trained, output)",
          "the FINISHED marker written before the outputs", False, ("tests/pipeline/test_train.py",)),
    Break("pixelgan/config.py", '"train.compile", "train.epochs")', '"train.compile", "train.epochs", "model.prior")',
          "a changed prior let through a resume", True, (T + "test_training.py::test_the_cli_run_checkpoints_resumes_and_does_not_repeat_itself",)),
    Break("pixelgan/clusters.py", "return labels[scores.argmax(dim=0)]", "return labels[scores.argmin(dim=0)]",
          "the paper's rule names a cluster by its least confident example", True, (T + "test_evaluation.py",)),
    Break("pixelgan/clusters.py", "return float((cluster_labels[scores.argmax(dim=1)] != labels)",
          "return float((cluster_labels[scores.argmax(dim=1)] == labels)", "clustering error counts the right ones", True,
          (T + "test_evaluation.py",)),
    Break("pixelgan/evaluation.py", "for _ in range(draws)) / draws)", "for _ in range(draws)) / (draws + 1))",
          "the posterior averaged over one draw too many", False, (T + "test_evaluation.py",)),
    Break("pixelgan/evaluation.py", "nats_per_image / (dims * math.log(2))", "nats_per_image / dims",
          "bits per dimension without ln 2", True, (T + "test_evaluation.py",)),
    Break("pixelgan/evaluation.py", "cov_b.trace() - 2 * cross)", "cov_b.trace() + 2 * cross)",
          "the Fréchet distance's sign", True, (T + "test_evaluation.py",)),
    Break("pixelgan/objective.py", "loss = _bce(logits[:n], 1.0) + _bce(logits[n : 2 * n], 0.0)",
          "loss = _bce(logits[:n], 0.0) + _bce(logits[n : 2 * n], 1.0)", "D's targets swapped", True,
          (T + "test_objective.py",)),
    Break("pixelgan/objective.py", "fooling = _bce(model.discriminator(_blurred(encoded.code, game.instance_noise)), 1.0)",
          "fooling = _bce(model.discriminator(_blurred(encoded.code, game.instance_noise)), 0.0)", "the generator's target", True,
          (T + "test_objective.py",)),
    Break("pixelgan/objective.py", "code = model.encoder(images).code  # [B, code_dim]",
          "code = model.encoder(images).code.detach()  # [B, code_dim]", "the encoder learns nothing from reconstruction",
          True, (T + "test_objective.py",)),
    Break("pixelgan/engine.py", "model.decoder(x, encoded.code.roll(1, dims=0))", "model.decoder(x, encoded.code)",
          "the NLL with another image's code uses the image's own", True, (T + "test_training.py::test_the_decoder_uses_the_code",)),
    Break("pixelgan/engine.py", "game.softened(remaining)", "game.softened(1.0)", "D's softening never annealed", True,
          (T + "test_training.py::test_what_softens_ds_view_falls_to_none_by_the_last_epoch",)),
    Break("pixelgan/schedule.py", "0.5 * (1.0 + math.cos(", "0.5 * (1.0 - math.cos(", "the cosine schedule upside down", True,
          (T + "test_schedule.py",)),
    Break("pixelgan/data/splits.py", "order = np.random.default_rng(seed).permutation(len(labels))",
          "order = np.random.default_rng(0).permutation(len(labels))", "every seed draws the same labelled images", True,
          (T + "test_splits.py",)),
    Break("pixelgan/run.py", "rank=rank, shuffle=True,", "rank=rank, shuffle=False,", "training batches in file order",
          True, (T + "test_engine.py",)),
    Break("pixelgan/run.py", "own: list[Callback] = [SetSamplerEpoch(self.sampler), ", "own: list[Callback] = [",
          "the same permutation every epoch", True, (T + "test_engine.py",)),
    Break("pixelgan/checkpoint.py", '    optimizers.load_state_dict(state["optimizers"])\n', "",
          "a resume without the optimizers' moments", True, (T + "test_checkpoint.py",)),
    Break("pixelgan/checkpoint.py", "def set_rng_state(state: dict[str, Any]) -> None:\n",
          "def set_rng_state(state: dict[str, Any]) -> None:\n    return\n", "a resume without the random state", True,
          (T + "test_checkpoint.py",)),
    Break("pixelgan/engine.py", "        torch.set_rng_state(stopped_at)\n", "",
          "a run resumed part-way through an epoch draws from where the pass-over left it", True,
          (T + "test_training.py::test_a_cli_run_stopped_within_a_step_resumes_to_the_unbroken_runs_weights",)),
    Break("pixelgan/engine.py", "game.softened(remaining), within if epoch == start_epoch + 1 else None)",
          "game.softened(remaining), None)", "a run resumed part-way through an epoch redoes the whole epoch", True,
          (T + "test_training.py::test_a_run_stopped_anywhere_in_an_epoch_resumes_to_the_unbroken_runs_weights",)),
    Break("pixelgan/data/parquet.py", 'record another."""\n', 'record another."""\n    return\n',
          "splits prepared with other settings read as these", True,
          (T + "test_training.py::test_splits_prepared_with_other_settings_are_refused_naming_both",)),
    Break("pipeline/params.py", 'for run in [params, *(run_params(params, name) for name in params.get("runs") or {})]:',
          "for run in [params]:", "the params writer leaves the runs unchecked", False, ("tests/pipeline/test_config.py",)),
    Break("pixelgan/data/images.py", "torch.bernoulli(images.float() / 255.0, generator=generator)",
          "torch.bernoulli(1 - images.float() / 255.0, generator=generator)", "stochastic binarisation inverted", True,
          (T + "test_data.py",)),
    Break("pixelgan/clusters.py", "return float((scores.argmax(dim=1) != labels)", "return float((scores.argmax(dim=1) == labels)",
          "classification error counts the right ones", True, (T + "test_evaluation.py",)),
    Break("pixelgan/engine.py", "return dict(zip(names, (values / dist.get_world_size()).tolist()))",
          "return dict(zip(names, values.tolist()))", "metrics summed, not averaged, over workers", True,
          (T + "test_engine.py",)),
    Break("pipeline/ray_train.py", "dict(run_identity(spec.run), epochs=", "dict(run_identity(spec.run), train=None, epochs=",
          "runs differing in train settings share a name (and checkpoints)", True,
          ("tests/pipeline/test_sweep.py", "tests/pipeline/test_train.py::test_a_ray_run_is_named_by_its_identity_epochs_and_layout")),
    Break("pixelgan/engine.py", "time.perf_counter() > self.deadline", "time.perf_counter() < self.deadline",
          "the time limit inverted", False, (T + "test_training.py::test_a_cli_run_stopped_within_a_step_resumes_to_the_unbroken_runs_weights",)),
    Break("pixelgan/prior.py", "return F.one_hot(index, self.dim).float()", "return F.one_hot(index, self.dim).float().softmax(dim=1)",
          "categorical prior samples not one-hot", True, (T + "test_encoder_prior_discriminator.py",)),
    Break("pixelgan/layers.py", "h = v + right_shift(self.horizontal(x))", "h = v + self.horizontal(x)",
          "the first layer sees its own pixel (the likelihood cheats)", True, (T + "test_decoder.py",)),
    Break("pixelgan/report.py", '"std": float(np.std(values, ddof=1))}', '"std": 0.0}', "no spread over seeds", True,
          (T + "test_report.py",)),
    Break("pixelgan/config.py", '_at_least("dataset.validation_size", self.validation_size, 2)',
          '_at_least("dataset.validation_size", self.validation_size, 1)', "a validation split of 1 (every validation error NaN)",
          False, (T + "test_config.py",)),
    Break("pixelgan/clusters.py", "cluster_labels = labels_by_best_example(scores, labels).clone()",
          "cluster_labels = torch.zeros(scores.shape[1], dtype=labels.dtype)", "an empty cluster named 0 by the majority vote",
          True, (T + "test_evaluation.py",)),
    Break("pixelgan/clusters.py", "cluster_labels[cluster] = labels[assigned == cluster].mode().values",
          "cluster_labels[cluster] = labels[assigned == cluster][0]", "the majority vote takes the first label", True,
          (T + "test_evaluation.py",)),
    Break("pixelgan/engine.py", 'with torch.random.fork_rng(devices=[device] if torch.device(device).type == "cuda" else []):',
          "with contextlib.nullcontext():",
          "validation draws from training's random stream", True, (T + "test_engine.py",)),
    Break("pixelgan/engine.py", "            buffer.copy_(value)", "            pass",
          "the training-mode look at validation moves BatchNorm's running statistics", True, (T + "test_engine.py",)),
    Break("pixelgan/engine.py", "[order.argsort()]", "", "the workers' validation rows gathered out of the split's order",
          True, (T + "test_engine.py",)),
    Break("pixelgan/engine.py", "        starts.pop()", "        pass", "a lone row left for BatchNorm in training mode",
          False, (T + "test_engine.py",)),
    Break("pixelgan/schedule.py", "if optimizer is not None and id(optimizer) not in seen:", "if optimizer is not None:",
          "a shared encoder optimizer runs at the supervised phase's rate", True, (T + "test_schedule.py",)),
    Break("pixelgan/encoder.py", "        if not self.training:\n            return x", "",
          "the encoder's input corrupted when scoring too", True, (T + "test_objective.py",)),
    Break("pixelgan/clusters.py", "    return 1.0 if mean_entropy <= 0 else float((mutual / mean_entropy).clamp(0, 1))",
          "    return 1.0 if mean_entropy <= 0 else float((mutual / entropy(pa)).clamp(0, 1))",
          "NMI normalised by one labelling's entropy", False, ("tests/pixelgan/test_clusters.py",)),
    Break("pixelgan/objective.py", "fooling - game.marginal_entropy * entropy", "fooling + game.marginal_entropy * entropy",
          "the marginal-entropy term's sign", True, (T + "test_objective.py",)),
]


def scratch_copy(destination: Path) -> Path:
    """The working tree's tracked and unignored files, as a fresh clone would have them."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    for name in files:
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    return destination


def run_tests(copy: Path, tests: tuple[str, ...]) -> int:
    """pytest's exit code for ``tests`` in ``copy``, one thread, without the Ray tests."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not ray", *tests]
    return subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutation_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, nargs="*", metavar="N", help="the breaks to try, by number (default: all)")
    args = parser.parse_args(argv)
    chosen = [(n, b) for n, b in enumerate(BREAKS, 1) if not args.only or n in args.only]
    with tempfile.TemporaryDirectory(prefix="pixelgan-mutants-") as folder:
        copy = scratch_copy(Path(folder))
        for n, brk in chosen:
            if (copy / brk.file).read_text().count(brk.old) != 1:
                print(f"break {n}: its text is not once in {brk.file}; update scripts/mutation_check.py", file=sys.stderr)
                return 2
        tests = sorted({test for _, brk in chosen for test in brk.tests})
        if (code := run_tests(copy, tuple(tests))) != 0:
            print(f"the unbroken copy fails its tests (pytest exit {code}): fix that first", file=sys.stderr)
            return 2
        print("| # | file | break | published | result |\n|---|---|---|---|---|", flush=True)
        caught = missed_published = 0
        for n, brk in chosen:
            path = copy / brk.file
            original = path.read_text()
            path.write_text(original.replace(brk.old, brk.new))
            try:
                code = run_tests(copy, brk.tests)
            finally:
                path.write_text(original)
            result = {0: "MISSED", 1: "caught"}.get(code, f"error (pytest exit {code})")
            caught += code == 1
            missed_published += code != 1 and brk.published
            print(f"| {n} | {brk.file} | {brk.what} | {'yes' if brk.published else 'no'} | {result} |", flush=True)
        print(f"\ncaught {caught} of {len(chosen)}; breaks of a published number not caught: {missed_published}")
    return 1 if missed_published else 0


if __name__ == "__main__":
    sys.exit(main())
