"""Names and kinds of the catalog's datasets, known without reading one or importing torch.

The config checks (:mod:`trustbench.config`) run before any heavy import, so a wrong data choice fails
in under a second; they need only what is here. :mod:`trustbench.data.catalog` and
:mod:`trustbench.data.regression_sets` read the sets these names stand for.
"""

from __future__ import annotations

from typing import Literal

DATASETS: dict[str, str] = {
    "mnist": "MNIST handwritten digits, 1×28×28, 10 classes, 60k train / 10k test",
    "fashion_mnist": "Fashion-MNIST clothing photos, 1×28×28, 10 classes, 60k train / 10k test",
    "animal_mnist": "Animal-MNIST silhouettes, 1×28×28, 10 classes, 8k train / 2k test (fixed split)",
    "cifar10": "CIFAR-10 photos, 3×32×32, 10 classes, 50k train / 10k test",
    "cifar100": "CIFAR-100 photos, 3×32×32, 100 fine classes, 50k train / 10k test",
    "svhn": "SVHN cropped house-number digits, 3×32×32, 10 classes, 73k train / 26k test",
    "tin": "Tiny ImageNet 200 resized 64→32, 3×32×32, 200 classes, 100k train / 10k test (official val)",
    "textures": "DTD textures, centre crop resized to 3×32×32, 47 classes, 3760 train / 1880 test (split 1)",
    "places365": "Places365 scenes (official val_256) resized to 3×32×32, 365 classes, 18k train / 18k test",
    "adult": "UCI Adult census income >50K, tabular, groups sex and race, 32.6k train / 16.3k test",
    "compas": "ProPublica COMPAS two-year recidivism, tabular, groups race and sex, 80/20 fixed split",
    "german": "UCI German credit good/bad, tabular, groups age>=25 and sex, 80/20 fixed split",
    "celeba": "CelebA aligned faces, 3×64×64, Y = Attractive, groups male and young, 183k train / 20k test",
    "mnist_semi_random": "W2reg's MNIST: Y = digit >= 5, random group s (s=0 rotated), biased train labels",
    "decoy_mnist": "MNIST with a label-shaded corner square in training (random shade in test), annotated",
    "decoy_fashion_mnist": "Fashion-MNIST with Ross et al.'s label-shaded decoy squares, annotated",
    "digit_mosaic": "2x2 mosaics of MNIST digits, 4 classes by a rule over which digits appear, 10 concepts",
    "synthetic": "4 Gaussian blobs in 8-D with a binary group, tabular, 400 train / 200 test (for tests)",
    "synthetic_image": "noisy 1×12×12 bars of 3 orientations, 300 train / 150 test (for tests)",
}

TABULAR = frozenset({"adult", "compas", "german", "synthetic"})

REGRESSION_DATASETS: dict[str, str] = {
    "boston": "Boston housing (MASS), median value in $1000s, 506 rows × 13, UCI protocol 90/10 splits",
    "diabetes": "Efron et al.'s diabetes progression (scikit-learn's copy), 442 rows × 10, 90/10 splits",
    "diamonds": "ggplot2 diamonds, price in US$, 53,940 rows × 26 (one-hot cut/color/clarity), 90/10 splits",
    "rotated_mnist": "MNIST digits rotated by θ ~ U(-R, R), target θ in degrees (R = data.rotation)",
    "mnist_distance": "MNIST digits, dense target: each pixel's distance to the stroke (pixels), 28×28 maps",
}
REGRESSION_KINDS: dict[str, Literal["image", "tabular"]] = {
    "boston": "tabular",
    "diabetes": "tabular",
    "diamonds": "tabular",
    "rotated_mnist": "image",
    "mnist_distance": "image",
}


def known_dataset(name: str) -> str:
    """`name` itself when the classification catalog has it; ValueError listing the valid names if not."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return name


def dataset_kind(name: str) -> Literal["image", "tabular"]:
    """Whether `name` holds images or tabular rows, without loading it (for config checks)."""
    if name in REGRESSION_KINDS:
        return REGRESSION_KINDS[name]
    return "tabular" if known_dataset(name) in TABULAR else "image"
