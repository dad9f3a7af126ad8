"""Scores: the clustering rules on codes with a known answer, the Fréchet distance, NLL units;
what a categorical code holds (the NLL with a part of the code swapped, a semi-supervised
head's names against its clusters')."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pixelgan import evaluation
from pixelgan.classifier import Classifier, sample_quality, train_classifier
from pixelgan.clusters import (
    category_diagnostics,
    classification_error,
    clustering_error,
    clustering_report,
    ink,
    labels_by_best_example,
    labels_by_majority,
    validation_error,
    validation_halves,
)
from pixelgan.config import PriorConfig, TrainConfig
from pixelgan.data import ImageDataset, data_form
from pixelgan.data.parquet import read_prepared
from pixelgan.data.splits import Split, labelled_subset
from pixelgan.engine import evaluate
from pixelgan.evaluation import (
    category_scores,
    code_split_nll,
    frechet_distance,
    label_alignment,
    likelihood_units,
    posterior_categories,
    score_model,
)
from pixelgan.model import PixelGAN
from pixelgan.objective import build_optimizers, supervised_phase
from tests.helpers import tiny_model_config


def one_hot_scores(clusters: list[int], k: int, confidence: list[float]) -> torch.Tensor:
    scores = torch.zeros(len(clusters), k)
    scores[torch.arange(len(clusters)), torch.tensor(clusters)] = torch.tensor(confidence, dtype=torch.float)
    return scores


def test_the_papers_rule_labels_each_cluster_by_its_most_confident_example() -> None:
    # Cluster 0 holds labels 7, 7, 3 but its most confident example is the 3: the paper's
    # rule calls it 3, the majority vote 7. Cluster 1 is all 5s.
    scores = one_hot_scores([0, 0, 0, 1, 1], 2, [0.6, 0.7, 0.9, 0.8, 0.5])
    labels = torch.tensor([7, 7, 3, 5, 5])
    assert labels_by_best_example(scores, labels).tolist() == [3, 5]
    assert labels_by_majority(scores, labels).tolist() == [7, 5]
    test_scores = one_hot_scores([0, 0, 1, 1], 2, [1, 1, 1, 1])
    test_labels = torch.tensor([7, 3, 5, 1])
    assert clustering_error(test_scores, test_labels, labels_by_best_example(scores, labels)) == 0.5
    assert clustering_error(test_scores, test_labels, labels_by_majority(scores, labels)) == 0.5
    assert clustering_error(test_scores, torch.tensor([3, 3, 5, 5]), labels_by_best_example(scores, labels)) == 0.0


# Validation rows (cluster, confidence, label). Over the whole split the paper's rule names
# cluster 0 by row 1 (a 7) and cluster 1 by row 7 (a 1); the majority vote says 7 and 5.
VALIDATION = [(0, 0.9, 3), (0, 0.95, 7), (0, 0.5, 7), (1, 0.6, 5), (1, 0.8, 5), (0, 0.4, 7), (0, 0.3, 3), (1, 0.9, 1)]
VAL_SCORES = one_hot_scores([c for c, _, _ in VALIDATION], 2, [q for _, q, _ in VALIDATION])
VAL_LABELS = torch.tensor([y for _, _, y in VALIDATION])
# Test clusters are pure, so labels read off the test split itself would score 0 under both
# rules; named by the whole validation split, 0 -> 7 and 1 -> 1 (paper's rule) score 0.75.
TEST_SCORES = one_hot_scores([0, 0, 0, 1], 2, [1.0, 1.0, 1.0, 1.0])
TEST_LABELS = torch.tensor([3, 3, 3, 1])
EXPECTED_TEST = {"error_paper_rule": 0.75, "error_majority": 1.0, "clusters_used": 2}


def error_within_validation(rule: str) -> float:
    """The validation figure written out row by row: clusters named on one half of
    ``VALIDATION`` (``validation_halves``) by the best or the commonest label, the other half scored."""
    naming, scored = (half.tolist() for half in validation_halves(len(VALIDATION)))
    names = {}
    for cluster in {VALIDATION[row][0] for row in naming}:
        rows = [row for row in naming if VALIDATION[row][0] == cluster]
        labels = [VALIDATION[row][2] for row in rows]
        names[cluster] = (VALIDATION[max(rows, key=lambda row: VALIDATION[row][1])][2] if rule == "best"
                          else max(set(labels), key=labels.count))
    assert set(names) == {0, 1}, "the naming half holds rows of both clusters"
    return sum(names[VALIDATION[row][0]] != VALIDATION[row][2] for row in scored) / len(scored)


def test_clusters_are_named_on_validation_and_each_split_scored_by_its_own_labels() -> None:
    report = clustering_report(VAL_SCORES, VAL_LABELS, TEST_SCORES, TEST_LABELS)
    assert {key: report[key] for key in EXPECTED_TEST} == EXPECTED_TEST
    assert report["val_error_paper_rule"] == error_within_validation("best")
    assert report["val_error_majority"] == error_within_validation("majority")
    shuffled = clustering_report(VAL_SCORES, VAL_LABELS, TEST_SCORES, TEST_LABELS[torch.tensor([3, 2, 1, 0])])
    assert {k: v for k, v in shuffled.items() if k.startswith("val_")} == {
        k: v for k, v in report.items() if k.startswith("val_")}, "the test labels enter no validation figure"


# The report the next tests expect a model's scores to carry; checked just above.
EXPECTED = clustering_report(VAL_SCORES, VAL_LABELS, TEST_SCORES, TEST_LABELS)


def test_validation_halves_split_rows_that_alternate_between_two_populations() -> None:
    """MNIST's training rows alternate between two groups of writers: each half of the
    validation split takes rows of both, the same rows on every call."""
    naming, scored = validation_halves(10_000)
    assert torch.equal(torch.cat([naming, scored]).sort().values, torch.arange(10_000))
    assert len(naming) == len(scored) == 5_000
    assert all(torch.equal(a, b) for a, b in zip((naming, scored), validation_halves(10_000)))
    for half in (naming, scored):
        assert 0.45 < float((half % 2 == 0).double().mean()) < 0.55
    # One cluster, the even rows one label and the odd rows the other: about half wrong,
    # where naming it on the even rows and scoring the odd would say all wrong.
    labels = torch.arange(10_000) % 2
    scores = torch.nn.functional.one_hot(torch.zeros(10_000, dtype=torch.long), 2).float()
    assert 0.45 < validation_error(scores, labels) < 0.55


def test_a_models_scores_take_each_split_where_it_belongs(monkeypatch: pytest.MonkeyPatch) -> None:
    """category_scores, on the posteriors above: clustering by both rules, and a semi-supervised
    head's error on each split."""
    val_images, test_images = torch.zeros(len(VAL_LABELS), 1, 2, 2), torch.ones(len(TEST_LABELS), 1, 2, 2)
    posteriors = {id(val_images): VAL_SCORES, id(test_images): TEST_SCORES}
    in_training = VAL_SCORES.roll(1, dims=1)  # every argmax moved: what training mode would say differs

    def posterior(model: object, images: torch.Tensor, draws: int, training: bool = False) -> torch.Tensor:
        return in_training if training and id(images) == id(val_images) else posteriors[id(images)]

    monkeypatch.setattr(evaluation, "posterior_categories", posterior)
    splits = ((val_images, VAL_LABELS), (test_images, TEST_LABELS))
    diagnostics = category_diagnostics(VAL_SCORES, VAL_LABELS, ink(val_images), in_training)
    assert diagnostics["train_eval_agreement"] == 0.0
    assert category_scores(None, *splits, draws=1, semi_supervised=False) == {"clustering": EXPECTED, "diagnostics": diagnostics}
    # As a classifier's scores: validation argmaxes 0,0,0,1,1,0,0,1 against labels 3,7,7,5,5,7,3,1.
    head_val, head_test = torch.tensor([0, 0, 0, 1, 1, 0, 0, 1]), torch.tensor([3, 3, 3, 1])
    assert category_scores(None, (val_images, head_val), (test_images, head_test), draws=1, semi_supervised=True) == {
        "val_error": 0.0, "test_error": 0.75,
        "diagnostics": category_diagnostics(VAL_SCORES, head_val, ink(val_images), in_training)}


def hand_made_posteriors(monkeypatch: pytest.MonkeyPatch) -> tuple[Split, Split]:
    """Validation and test splits of 8x8 images (blank, and full) whose posteriors are the
    hand-made ones above, each split's own."""
    monkeypatch.setattr(evaluation, "posterior_categories",
                        lambda model, images, draws, **_: VAL_SCORES if images.max() == 0 else TEST_SCORES)

    def split(value: int, labels: torch.Tensor) -> Split:
        return Split(np.full((len(labels), 1, 8, 8), value, np.uint8), labels.numpy(), np.arange(len(labels)))

    return split(0, VAL_LABELS), split(255, TEST_LABELS)


def test_score_model_takes_each_split_where_it_belongs(monkeypatch: pytest.MonkeyPatch) -> None:
    validation, test = hand_made_posteriors(monkeypatch)
    model = PixelGAN(tiny_model_config(prior=PriorConfig("categorical", 2)))
    scores = score_model(model, validation, test, draws=1, semi_supervised=False, seed=0)
    assert scores["clustering"] == EXPECTED
    blank = score_model(model, validation, validation, draws=1, semi_supervised=False, seed=0)["nll_nats"]
    assert scores["nll_nats"] != pytest.approx(blank), "the NLL is the test split's"


def test_a_models_report_scores_each_split_where_it_belongs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pixelgan.config import EvalConfig
    from pixelgan.data.parquet import Splits
    from pixelgan.report import evaluate_model

    validation, test = hand_made_posteriors(monkeypatch)
    model = PixelGAN(tiny_model_config(prior=PriorConfig("categorical", 2)))
    splits = Splits(train=validation, validation=validation, test=test)
    scores, figures = evaluate_model(model, splits, EvalConfig(figure_rows=2, figure_columns=2), tmp_path, prefix="m_",
                                     semi_supervised=False)
    assert scores["clustering"] == EXPECTED
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(f"m_{name}.png" for name in figures)


def test_an_empty_cluster_keeps_the_papers_label_under_the_majority_vote() -> None:
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.0, 0.2], [0.2, 0.7, 0.1]])
    labels = torch.tensor([4, 4, 6])
    # No example has cluster 2 as its argmax; its best example (0.2) is the second one.
    assert labels_by_majority(scores, labels).tolist() == [4, 6, 4]


def test_classification_error_is_the_share_of_wrong_argmaxes() -> None:
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert classification_error(scores, torch.tensor([1, 0, 0, 1])) == 0.5


def test_likelihood_units() -> None:
    assert likelihood_units(80.0, 784, binary=True) == {"nll_nats": 80.0}
    bits = likelihood_units(3072 * math.log(2) * 3.0, 3072, binary=False)
    assert bits == {"nll_bits_per_dim": pytest.approx(3.0)}


def direct_frechet(mean_a, cov_a, mean_b, cov_b) -> float:
    """The closed form for commuting (here diagonal) covariances: sum (sqrt a - sqrt b)^2."""
    return float(np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(np.diag(cov_a)) - np.sqrt(np.diag(cov_b))) ** 2))


def test_frechet_distance_matches_the_closed_form_on_sampled_gaussians() -> None:
    rng = np.random.default_rng(0)
    mean_a, mean_b = np.array([0.0, 1.0, -1.0]), np.array([0.5, 1.0, 2.0])
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    a = rng.normal(mean_a, np.sqrt(var_a), size=(200_000, 3))
    b = rng.normal(mean_b, np.sqrt(var_b), size=(200_000, 3))
    expected = direct_frechet(mean_a, np.diag(var_a), mean_b, np.diag(var_b))
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=0.02)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_with_correlated_covariances_against_scipy() -> None:
    from scipy import linalg

    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4))
    b = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4)) + 1.0
    ma, mb, ca, cb = a.mean(0), b.mean(0), np.cov(a.T), np.cov(b.T)
    expected = np.sum((ma - mb) ** 2) + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-6)


def test_posterior_categories_are_distributions_and_need_categories() -> None:
    model = PixelGAN(tiny_model_config(prior=PriorConfig("categorical_gaussian", 4, style_dim=2)))
    probs = posterior_categories(model, torch.randint(0, 2, (10, 1, 8, 8)).float(), draws=3)
    assert probs.shape == (10, 4)
    assert torch.allclose(probs.sum(1), torch.ones(10), atol=1e-5)
    with pytest.raises(ValueError, match="prior.kind=gaussian"):
        posterior_categories(PixelGAN(tiny_model_config()), torch.zeros(2, 1, 8, 8))


def test_sample_quality_tells_class_like_samples_from_noise() -> None:
    # Two "classes": a bright top half or a bright bottom half.
    torch.manual_seed(0)
    labels = torch.randint(0, 2, (200,))
    images = torch.zeros(200, 1, 8, 8)
    for i, label in enumerate(labels):
        images[i, 0, (0 if label == 0 else 4) : (4 if label == 0 else 8)] = 1.0
    classifier = Classifier(1, 8, 8, classes=2, features=16)
    losses = train_classifier(classifier, images, labels, epochs=3, batch_size=20)
    assert losses[-1] < losses[0]
    good = sample_quality(classifier, images[:100], images[100:], sample_categories=labels[:100])
    noise = sample_quality(classifier, torch.randint(0, 2, (100, 1, 8, 8)).float(), images[100:])
    assert good["frechet_distance"] < noise["frechet_distance"]
    assert good["confidence"] > 0.9 and good["category_purity"] == 1.0
    assert good["label_entropy"] == pytest.approx(math.log(2), abs=0.02)
    assert 1.0 <= good["classifier_score"] <= 2.0 + 1e-6


def digits_model(digits: Path, prior: PriorConfig) -> PixelGAN:
    return PixelGAN(tiny_model_config(image=read_prepared(digits).image, prior=prior)).eval()


def test_the_code_split_own_and_other_code_nll_match_the_engines(digits: Path) -> None:
    model = digits_model(digits, PriorConfig("categorical_gaussian", 10))
    test = read_prepared(digits).test
    torch.manual_seed(0)
    nll = code_split_nll(model, test)
    torch.manual_seed(0)  # the same encoder noise
    engine = evaluate(model, DataLoader(ImageDataset(torch.from_numpy(test.images), torch.from_numpy(test.labels), likelihood="bernoulli"), batch_size=500), "cpu")
    assert nll["own code"] == pytest.approx(engine["nll"], rel=1e-5)
    assert nll["other code"] == pytest.approx(engine["nll_other_code"], rel=1e-5)


def test_each_code_split_swap_changes_only_its_part(digits: Path) -> None:
    """A decoder that reads the style and not the categories: swapping the
    categories changes nothing, swapping the style is swapping the whole code. (Untrained,
    it has no reason to fit an image better with its own code, so only a change is asserted.)"""
    model = digits_model(digits, PriorConfig("categorical_gaussian", 10))
    with torch.no_grad():
        for layer in model.decoder.layers:
            layer.condition.weight[:, :10] = 0
            layer.condition.weight[:, 10:] *= 50
    nll = code_split_nll(model, read_prepared(digits).test)
    assert nll["other categories"] == pytest.approx(nll["own code"], rel=1e-6)
    assert nll["other style"] == pytest.approx(nll["other code"], rel=1e-6)
    assert nll["other style"] != pytest.approx(nll["own code"], rel=1e-6), "the style is what this decoder reads"


def test_the_code_split_needs_a_code_with_a_style_part(digits: Path) -> None:
    with pytest.raises(ValueError, match=r"prior 'categorical'; this splits a categorical_gaussian code"):
        code_split_nll(digits_model(digits, PriorConfig("categorical", 10)), read_prepared(digits).test)


LABELS = 100  # the digits fixture's dataset.labels (DatasetConfig's default)


@pytest.fixture(scope="module")
def semi_supervised(digits: Path) -> tuple[PixelGAN, np.ndarray]:
    """A tiny model whose head learnt the labelled rows (the supervised phase alone), and those rows."""
    torch.manual_seed(0)
    train = TrainConfig(seed=0, semi_supervised=True)
    splits = read_prepared(digits)
    model = PixelGAN(tiny_model_config(image=splits.image, prior=PriorConfig("categorical_gaussian", 10)))
    rows = labelled_subset(splits.train.labels, LABELS, 10, train.seed)
    images, labels = data_form(torch.from_numpy(splits.train.images[rows]), "bernoulli"), torch.from_numpy(splits.train.labels[rows])
    optimizer = build_optimizers(model, train).supervised
    assert optimizer is not None
    for _ in range(300):
        supervised_phase(model, optimizer, images, labels)
    return model.eval(), rows


def renamed(model: PixelGAN, a: int, b: int) -> PixelGAN:
    """The same model with categories ``a`` and ``b`` swapped: the same clusters, other names."""
    swapped = PixelGAN(model.config)
    swapped.load_state_dict(model.state_dict())
    order = torch.arange(10)
    order[[a, b]] = order[[b, a]]
    head, balance = swapped.encoder.categorical, swapped.encoder.balance
    assert head is not None and balance is not None
    with torch.no_grad():
        head.weight.copy_(head.weight[order])
        head.bias.copy_(head.bias[order])
        balance.running_mean.copy_(balance.running_mean[order])
        balance.running_var.copy_(balance.running_var[order])
    return swapped.eval()


def test_renamed_categories_raise_the_head_error_and_leave_the_clusters_error(
    digits: Path, semi_supervised: tuple[PixelGAN, np.ndarray]
) -> None:
    model, rows = semi_supervised
    splits = read_prepared(digits)

    def alignment(model: PixelGAN) -> dict[str, object]:
        return label_alignment(model, splits.train, rows, splits.validation, splits.test)

    trained = alignment(model)
    swapped = alignment(renamed(model, 0, 1))
    assert alignment(model) == trained, "a model's figures do not depend on what ran before"
    assert trained["categories renamed"] == 0 and trained["labelled rows right"] >= 0.9 * LABELS, "the head fits its labels"
    assert trained["categories"] == 10 and trained["labelled rows"] == LABELS
    assert trained["head error %"] == pytest.approx(trained["majority-label error %"])
    assert swapped["categories renamed"] == 2
    assert swapped["labelled rows right"] <= trained["labelled rows right"] - 2 * 0.9 * LABELS / 10
    assert swapped["head error %"] > trained["head error %"] + 10
    assert swapped["majority-label error %"] == pytest.approx(trained["majority-label error %"])
    (first, second) = swapped["commonest errors"][:2]
    assert {first[:2], second[:2]} == {(0, 1), (1, 0)}, "the swapped digits lead the errors"
