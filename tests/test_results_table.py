"""`trustbench table`: grouping, mean ± std, failed/incomplete runs counted, paper rows, formats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from trustbench import cli
from trustbench.results.record import CONFIG_FILE, find_run_dirs, read_result, write_result
from trustbench.results.table import collect_runs, damaged_footnote, render, summarize

PAPER = {"citation": "Doe et al. 2020", "metrics": {"cls/acc": 0.9}}


def make_run(root: Path, name: str, method: str, seed: int, status: str | None, acc: float = 0.0) -> Path:
    run_dir = root / name
    config = {"method": {"name": method}, "data": {"name": "mnist"}, "seed": seed, "paper": PAPER}
    run_dir.mkdir(parents=True)
    (run_dir / CONFIG_FILE).write_text(OmegaConf.to_yaml(config))
    if status is not None:
        metrics = {"cls/acc": acc, "ood/fmnist/auroc": acc / 2} if status == "ok" else {}
        write_result(run_dir, {"status": status, "metrics": metrics, "config": config, "error": "boom"})
    return run_dir


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    make_run(tmp_path, "a0", "erm", 0, "ok", 0.90)
    make_run(tmp_path, "a1", "erm", 1, "ok", 0.92)
    make_run(tmp_path, "a2", "erm", 2, "ok", 0.97)
    make_run(tmp_path, "b0", "duq", 0, "ok", 0.80)
    make_run(tmp_path / "sweep", "b1", "duq", 1, "failed")
    make_run(tmp_path / "sweep", "b2", "duq", 2, None)  # killed before writing result.json
    return tmp_path


def test_result_json_round_trips_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_result(tmp_path, {"status": "ok", "metrics": {"cls/acc": 0.5}})
    assert read_result(tmp_path) == {"status": "ok", "metrics": {"cls/acc": 0.5}}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_run_dirs_are_found_recursively(runs_root: Path) -> None:
    names = [p.name for p in find_run_dirs([runs_root])]
    assert sorted(names) == ["a0", "a1", "a2", "b0", "b1", "b2"]


def test_mean_and_sample_std_over_seeds(runs_root: Path) -> None:
    summary = summarize(collect_runs([runs_root], ["method"]), ["method"])
    erm = summary[(summary.method == "erm") & (summary.source == "ours")].iloc[0]
    # mean(0.90, 0.92, 0.97) = 0.93; sample std = sqrt(((-.03)^2 + (-.01)^2 + .04^2) / 2) = sqrt(0.0013)
    assert erm["cls/acc"] == pytest.approx(0.93)
    assert erm["cls/acc std"] == pytest.approx(math.sqrt(0.0013))
    assert erm["ood/fmnist/auroc"] == pytest.approx(0.465)
    assert (erm["runs"], erm["failed"]) == (3, 0)


def test_failed_and_incomplete_runs_are_counted_not_dropped(runs_root: Path) -> None:
    summary = summarize(collect_runs([runs_root], ["method"]), ["method"])
    duq = summary[(summary.method == "duq") & (summary.source == "ours")].iloc[0]
    assert (duq["runs"], duq["failed"]) == (1, 2)
    assert duq["cls/acc"] == pytest.approx(0.80)
    assert math.isnan(duq["cls/acc std"])


def test_paper_numbers_sit_beside_ours(runs_root: Path) -> None:
    summary = summarize(collect_runs([runs_root], ["method"]), ["method"])
    paper = summary[summary.source == "Doe et al. 2020"]
    assert sorted(paper.method) == ["duq", "erm"]
    assert paper["cls/acc"].tolist() == [0.9, 0.9]
    assert paper["ood/fmnist/auroc"].isna().all()


def test_metric_globs_select_columns_and_unknown_metrics_are_named(runs_root: Path) -> None:
    runs = collect_runs([runs_root], ["method", "data"])
    summary = summarize(runs, ["method", "data"], ["ood/*/auroc"])
    assert [c for c in summary.columns if "/" in c] == ["ood/fmnist/auroc", "ood/fmnist/auroc std"]
    with pytest.raises(ValueError, match="no run has metric cal/nope"):
        summarize(runs, ["method"], ["cal/nope"])


def test_markdown_shows_mean_plus_minus_std(runs_root: Path) -> None:
    text = render(summarize(collect_runs([runs_root], ["method"]), ["method"]), ["method"], "md", digits=3)
    assert "0.930 ± 0.036" in text
    assert "| erm" in text


def test_csv_keeps_mean_and_std_as_numbers(runs_root: Path) -> None:
    text = render(summarize(collect_runs([runs_root], ["method"]), ["method"]), ["method"], "csv")
    header = text.splitlines()[0].split(",")
    assert "cls/acc" in header and "cls/acc std" in header and "failed" in header


def test_latex_escapes_names_and_keeps_plus_minus(runs_root: Path) -> None:
    text = render(summarize(collect_runs([runs_root], ["method"]), ["method"]), ["method"], "latex", digits=2)
    assert r"0.93 $\pm$ 0.04" in text
    assert r"ood/fmnist/auroc" in text and r"\begin{tabular}" in text


def test_no_runs_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no runs found"):
        summarize(collect_runs([tmp_path], ["method"]), ["method"])


def test_written_result_is_valid_json(runs_root: Path) -> None:
    record = json.loads((runs_root / "a0" / "result.json").read_text())
    assert record["status"] == "ok"


def test_damaged_records_count_as_failed_and_are_named(runs_root: Path) -> None:
    (runs_root / "a2" / "result.json").write_text('{"status": "ok", "metr')  # truncated mid-write
    (runs_root / "sweep" / "b2" / CONFIG_FILE).write_bytes(b"method: {name: [duq\n\x00\x00")
    runs = collect_runs([runs_root], ["method"])
    summary = summarize(runs, ["method"])
    erm = summary[(summary.method == "erm") & (summary.source == "ours")].iloc[0]
    # a2 (0.97) is damaged: erm is mean(0.90, 0.92) over 2 ok runs, a2 counted as failed under its config
    assert (erm["runs"], erm["failed"]) == (2, 1)
    assert erm["cls/acc"] == pytest.approx(0.91)
    footnote = damaged_footnote(runs).splitlines()
    assert footnote[0] == "2 damaged record(s), counted as failed:"
    assert str(runs_root / "a2" / "result.json") in footnote[1] and "damaged result.json" in footnote[1]
    assert str(runs_root / "sweep" / "b2" / CONFIG_FILE) in footnote[2]


def test_cli_table_prints_good_runs_and_a_footnote_for_a_damaged_one(
    runs_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (runs_root / "b0" / "result.json").write_bytes(b"\x00" * 64)
    cli.main(["table", str(runs_root), "--by", "method", "--digits", "2"])
    captured = capsys.readouterr()
    assert "0.93 ± 0.04" in captured.out
    assert str(runs_root / "b0" / "result.json") in captured.err


def test_unknown_by_key_is_refused_with_a_suggestion(runs_root: Path) -> None:
    with pytest.raises(
        ValueError,
        match=r"no run has config key 'methd' \(did you mean method\?\); "
        r"top-level keys: data, method, paper, seed",
    ):
        collect_runs([runs_root], ["methd"])
    assert collect_runs([runs_root], ["method.name", "seed"])["seed"].tolist() == [0, 1, 2, 0, 1, 2]
