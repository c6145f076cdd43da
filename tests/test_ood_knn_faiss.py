"""KNN through faiss on real features (issue 10): exact search gives the previous implementation's scores, an
IVF index above `exact_limit` keeps the AUROC within 1e-3 of exact search, and faiss uses torch's threads.

The features are those of a LeNet trained for 60 Adam steps on real MNIST (about 85 % test accuracy): MNIST
training images are the bank, MNIST test images the ID queries and Fashion-MNIST test images the OOD ones.
The default run searches a 20,000-row bank with `exact_limit` lowered to 10,000; the slow test uses the
full 55,000-row bank and the default limit, every k of the tuning grid.
"""

from __future__ import annotations

import faiss
import pytest
import torch
from test_data_catalog import load_mirrored
from torch.nn import functional as F

from trustbench.backbones.lenet import LeNet
from trustbench.methods.ood import KNN
from trustbench.methods.ood.cache import extract_features
from trustbench.methods.ood.detector import Features
from trustbench.methods.ood.knn import (
    EXACT_LIMIT,
    MAX_SCANNED_SHARE,
    QUERY_CHUNK,
    inverted_file_index,
    scanned_rows,
    unit_rows,
)
from trustbench.metrics.ood import ood_metrics

SMALL_BANK, FULL_BANK, QUERIES, BATCH, STEPS = 20000, 55000, 1000, 128, 60


@pytest.fixture(scope="module")
def lenet(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The trained LeNet, the MNIST training images and the ID / OOD query features."""
    data_dir = tmp_path_factory.mktemp("data")
    mnist, fashion = load_mirrored("mnist", data_dir), load_mirrored("fashion_mnist", data_dir)
    torch.manual_seed(0)
    net = LeNet((1, 28, 28), 10)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for step in range(STEPS):
        rows = slice(step * BATCH, (step + 1) * BATCH)
        optimizer.zero_grad()
        F.cross_entropy(net(mnist.x_train[rows]), mnist.y_train[rows]).backward()
        optimizer.step()
    return {
        "net": net,
        "x_train": mnist.x_train,
        "id": extract_features(net, mnist.x_test[:QUERIES], 1024),
        "ood": extract_features(net, fashion.x_test[:QUERIES], 1024),
        "labels": mnist.y_test[:QUERIES],
    }


@pytest.fixture(scope="module")
def bank(lenet) -> Features:
    return extract_features(lenet["net"], lenet["x_train"][:SMALL_BANK], 2048)


def previous_scores(bank: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """The exact implementation KNN had before faiss, unchunked: the k-th largest inner product of the
    normalised float32 features by `topk`, then √(2 − 2 s)."""
    similarities = F.normalize(queries, dim=1) @ F.normalize(bank, dim=1).T
    return (2 - 2 * similarities.topk(k, dim=1).values[:, k - 1]).clamp_min(0).sqrt()


def aurocs_and_scores(knn: KNN, lenet: dict) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    scores = {split: knn.score(lenet[split]) for split in ("id", "ood")}
    return ood_metrics(scores["id"], scores["ood"]), scores


def assert_ivf_matches_exact(bank: Features, lenet: dict, k: int, exact_limit: int) -> None:
    exact, exact_scores = aurocs_and_scores(KNN(k=k, exact_limit=len(bank.logits)).fit(bank), lenet)
    approximate_knn = KNN(k=k, exact_limit=exact_limit).fit(bank)
    assert isinstance(approximate_knn._index, faiss.IndexIVFFlat)
    approximate, approximate_scores = aurocs_and_scores(approximate_knn, lenet)
    assert approximate["auroc"] == pytest.approx(exact["auroc"], abs=1e-3)
    for split in ("id", "ood"):  # a missed neighbour can only lengthen the k-th distance (float32 rounding)
        assert bool((approximate_scores[split] >= exact_scores[split] - 1e-5).all())


def test_the_trained_lenet_is_better_than_chance_by_far(lenet) -> None:
    accuracy = (lenet["id"].logits.argmax(dim=1) == lenet["labels"]).float().mean()
    assert accuracy > 0.8


@pytest.mark.parametrize("k", [1, 50, 1000])
def test_exact_search_gives_the_previous_implementations_scores(bank, lenet, k: int) -> None:
    knn = KNN(k=k).fit(bank)
    assert isinstance(knn._index, faiss.IndexFlatIP)
    for split in ("id", "ood"):
        expected = previous_scores(bank.features, lenet[split].features, k)
        torch.testing.assert_close(knn.score(lenet[split]), expected, rtol=0, atol=1e-5)


def test_more_queries_than_one_faiss_chunk_are_all_scored(bank) -> None:
    queries = Features(
        logits=bank.logits[: 2 * QUERY_CHUNK + 7], features=bank.features[: 2 * QUERY_CHUNK + 7]
    )
    expected = torch.cat([previous_scores(bank.features, part, 50) for part in queries.features.split(1000)])
    torch.testing.assert_close(KNN(k=50).fit(bank).score(queries), expected, rtol=0, atol=1e-5)


def test_a_bank_above_exact_limit_gets_sqrt_n_cells_and_scans_at_least_32k_or_2048_rows(bank) -> None:
    knn = KNN(k=50, exact_limit=SMALL_BANK - 1).fit(bank)
    # √20000 ≈ 141 cells of about 142 rows; 2048 rows take ⌈2048 · 141 / 20000⌉ = 15 cells
    assert (knn._index.nlist, knn._index.nprobe) == (141, 15)
    assert KNN(k=90, exact_limit=SMALL_BANK - 1).fit(bank)._index.nprobe == 21  # 32k = 2880 rows


def test_a_query_that_would_scan_over_15_percent_of_the_bank_is_searched_exactly(bank) -> None:
    # 15 % of 20000 rows is 3000: k = 93 scans 2976 rows (IVF), k = 94 scans 3008 (exact, and faster)
    assert isinstance(KNN(k=93, exact_limit=SMALL_BANK - 1).fit(bank)._index, faiss.IndexIVFFlat)
    assert isinstance(KNN(k=94, exact_limit=SMALL_BANK - 1).fit(bank)._index, faiss.IndexFlatIP)
    assert isinstance(KNN(k=1000, exact_limit=SMALL_BANK - 1).fit(bank)._index, faiss.IndexFlatIP)


@pytest.mark.parametrize("k", [50, 90])
def test_ivf_auroc_is_within_1e3_of_exact_search(bank, lenet, k: int) -> None:
    assert_ivf_matches_exact(bank, lenet, k, exact_limit=SMALL_BANK // 2)


def test_queries_whose_cells_hold_fewer_than_k_rows_are_searched_exactly(bank, lenet) -> None:
    k = 500
    knn = KNN(k=k, exact_limit=0)
    knn._index = inverted_file_index(unit_rows(bank.features), k)
    knn._index.nprobe = 1  # one cell of about 142 rows cannot hold 500 neighbours
    expected = previous_scores(bank.features, lenet["ood"].features, k)
    torch.testing.assert_close(knn.score(lenet["ood"]), expected, rtol=0, atol=1e-5)


def test_faiss_uses_as_many_threads_as_torch(bank, lenet) -> None:
    threads = torch.get_num_threads()
    try:
        for wanted in (2, 1):  # the test process runs on one thread (conftest): 2 first shows a change
            torch.set_num_threads(wanted)
            KNN(k=5).fit(lenet["id"]).score(lenet["ood"])
            assert faiss.omp_get_max_threads() == wanted
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def full_bank(lenet) -> Features:
    return extract_features(lenet["net"], lenet["x_train"][:FULL_BANK], 2048)


@pytest.mark.slow
@pytest.mark.parametrize(  # the grid's k searched by IVF on 55k rows (500 and 1000 are searched exactly)
    "k", [k for k in KNN.hparam_grid()["k"] if scanned_rows(k) <= MAX_SCANNED_SHARE * FULL_BANK]
)
def test_ivf_auroc_is_within_1e3_of_exact_search_on_all_55k_training_features(
    full_bank, lenet, k: int
) -> None:
    assert len(full_bank.logits) > EXACT_LIMIT
    assert_ivf_matches_exact(full_bank, lenet, k, exact_limit=EXACT_LIMIT)
