"""Counterfactual plots: the image grid writes one PNG with class and confidence titles and true difference
maps; the changed-features table shows original units and category names, and is saved as CSV + Markdown."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from trustbench.data.arrays import TabularMeta
from trustbench.plots import counterfactual
from trustbench.plots.counterfactual import (
    PANEL_INCHES,
    TABLE_COLUMNS,
    changed_features,
    image_grid,
    save_changed_features,
)
from trustbench.plots.figures import DPI

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Two grey 4x4 images; the counterfactuals brighten one pixel of each.
IMAGES = torch.zeros(2, 1, 4, 4)
IMAGES_CF = IMAGES.clone()
IMAGES_CF[0, 0, 1, 2] = 0.8
IMAGES_CF[1, 0, 3, 0] = 0.5
PROBS = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]])
PROBS_CF = torch.tensor([[0.3, 0.6, 0.1], [0.1, 0.2, 0.7]])
TARGET = torch.tensor([1, 2])
CLASS_NAMES = ("cat", "dog", "owl")

# age in [20, 70] years, hours constant at 10 in training (scaled with width 1), job one-hot.
META = TabularMeta(
    feature_names=("age", "hours", "job=clerk", "job=nurse", "job=pilot"),
    continuous=(0, 1),
    categorical_groups=((2, 3, 4),),
    ranges={"age": (20.0, 70.0), "hours": (10.0, 10.0)},
)
ROWS = torch.tensor([[0.2, 0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 1.0, 0.0]])


def capture_figure(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    captured: list[Figure] = []
    monkeypatch.setattr(counterfactual, "save_figure", lambda fig, path: captured.append(fig) or Path(path))
    return captured


def test_image_grid_writes_one_png_of_one_row_per_input(tmp_path: Path) -> None:
    target = tmp_path / "plots" / "cf_grid.png"
    assert image_grid(IMAGES, IMAGES_CF, PROBS, PROBS_CF, TARGET, target) == target
    assert target.read_bytes()[:8] == PNG_SIGNATURE
    height, width = round(2 * PANEL_INCHES * DPI), round(3 * PANEL_INCHES * DPI)
    assert matplotlib.image.imread(target).shape == (height, width, 4)
    assert list((tmp_path / "plots").iterdir()) == [target]


def test_image_grid_titles_show_predicted_and_target_class_with_confidence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    captured = capture_figure(monkeypatch)
    image_grid(IMAGES, IMAGES_CF, PROBS, PROBS_CF, TARGET, "unused.png", class_names=CLASS_NAMES)
    titles = [ax.get_title() for ax in captured[0].axes]
    assert titles == [
        "input: cat (0.90)",
        "cf → dog (0.60)",
        "x' − x",
        "input: dog (0.70)",
        "cf → owl (0.70)",
        "x' − x",
    ]


def test_image_grid_difference_map_is_counterfactual_minus_input(monkeypatch: pytest.MonkeyPatch) -> None:
    captured = capture_figure(monkeypatch)
    image_grid(IMAGES, IMAGES_CF, PROBS, PROBS_CF, TARGET, "unused.png")
    shown = captured[0].axes[2].images[0]
    torch.testing.assert_close(
        torch.as_tensor(shown.get_array().data), (IMAGES_CF[0, 0] - IMAGES[0, 0]).double()
    )
    assert shown.get_clim() == pytest.approx((-0.8, 0.8))


def test_image_grid_of_sets_shows_each_counterfactual_and_its_difference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    captured = capture_figure(monkeypatch)
    sets = torch.stack([IMAGES_CF, 1 - IMAGES_CF], dim=1)  # (2, 2, 1, 4, 4)
    image_grid(
        IMAGES, sets, PROBS, torch.stack([PROBS_CF, PROBS_CF], dim=1), TARGET, "unused.png", max_rows=1
    )
    assert len(captured[0].axes) == 5  # input, then (counterfactual, difference) twice; one row


def test_image_grid_rejects_tabular_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image_grid needs images"):
        image_grid(ROWS, ROWS, PROBS, PROBS_CF, TARGET, tmp_path / "grid.png")
    assert list(tmp_path.iterdir()) == []


def test_changed_features_show_original_units_and_category_names() -> None:
    x_cf = ROWS.clone()
    x_cf[0] = torch.tensor([0.5, 0.5, 0.0, 0.0, 1.0])  # age 30 -> 45, hours 10 -> 10.5, clerk -> pilot
    table = changed_features(ROWS, x_cf, META)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table[["example", "counterfactual", "feature"]].values.tolist() == [
        [0, 0, "age"],
        [0, 0, "hours"],
        [0, 0, "job"],
    ]
    assert table["original"].tolist() == [pytest.approx(30.0), pytest.approx(10.0), "clerk"]
    assert table["counterfactual_value"].tolist() == [pytest.approx(45.0), pytest.approx(10.5), "pilot"]


def test_changed_features_of_sets_name_each_counterfactual() -> None:
    older, pilot = ROWS.clone(), ROWS.clone()
    older[:, 0] += 0.1  # five years older
    pilot[1, 3:] = torch.tensor([0.0, 1.0])
    table = changed_features(ROWS, torch.stack([older, pilot], dim=1), META)
    assert table[["example", "counterfactual", "feature"]].values.tolist() == [
        [0, 0, "age"],
        [1, 0, "age"],
        [1, 1, "job"],
    ]
    assert table["original"].tolist() == [pytest.approx(30.0), pytest.approx(45.0), "nurse"]
    assert table["counterfactual_value"].tolist() == [pytest.approx(35.0), pytest.approx(50.0), "pilot"]


def test_changed_features_of_unchanged_rows_is_an_empty_table() -> None:
    table = changed_features(ROWS, ROWS + 1e-8, META)
    assert table.empty and list(table.columns) == list(TABLE_COLUMNS)


def test_changed_features_rejects_rows_of_another_width() -> None:
    with pytest.raises(ValueError, match=r"x must be tabular rows \(N, 5\)"):
        changed_features(ROWS[:, :4], ROWS[:, :4], META)


def test_save_changed_features_writes_csv_and_markdown(tmp_path: Path) -> None:
    x_cf = ROWS.clone()
    x_cf[0, 2:] = torch.tensor([0.0, 0.0, 1.0])
    table = changed_features(ROWS, x_cf, META)
    csv_path, markdown_path = save_changed_features(table, tmp_path / "run")
    assert sorted((tmp_path / "run").iterdir()) == sorted([csv_path, markdown_path])
    assert csv_path.name == "cf_changed_features.csv" and markdown_path.suffix == ".md"
    pd.testing.assert_frame_equal(pd.read_csv(csv_path), table)
    header, _, row = markdown_path.read_text().splitlines()
    assert [cell.strip() for cell in header.strip("|").split("|")] == list(TABLE_COLUMNS)
    assert [cell.strip() for cell in row.strip("|").split("|")] == ["0", "0", "job", "clerk", "pilot"]


def test_image_grid_difference_of_colour_images_keeps_the_largest_channel_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    captured = capture_figure(monkeypatch)
    x = torch.zeros(1, 3, 2, 2)
    x_cf = x.clone()
    x_cf[0, :, 0, 1] = torch.tensor([0.3, -0.6, 0.0])  # summed over channels this would be -0.3
    image_grid(x, x_cf, PROBS[:1], PROBS_CF[:1], TARGET[:1], "unused.png")
    shown = torch.as_tensor(captured[0].axes[2].images[0].get_array().data)
    torch.testing.assert_close(shown, torch.tensor([[0.0, -0.6], [0.0, 0.0]], dtype=torch.float64))
