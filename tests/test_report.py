"""report.html: a section per metric family with numbers, conventions, paper values, embedded plots and
provenance for one run; the `table` view (mean ± std per group) for a sweep; `trustbench report` on disk."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import torch
from conftest import FAST, result, trustbench
from omegaconf import OmegaConf

from trustbench.plots.calibration import reliability_diagram
from trustbench.report.render import render_report
from trustbench.results.record import CONFIG_FILE, write_result


def make_run(
    run_dir: Path,
    metrics: dict[str, float],
    method: str = "erm",
    status: str = "ok",
    error: str | None = None,
    **extra: object,
) -> Path:
    config = {
        "method": {"name": method},
        "data": {"name": "adult"},
        "seed": 0,
        "paper": extra.pop("paper", None),
    }
    run_dir.mkdir(parents=True)
    (run_dir / CONFIG_FILE).write_text(OmegaConf.to_yaml(config))
    record = {"status": status, "metrics": metrics, "error": error, "config": config, **extra}
    write_result(run_dir, record)
    return run_dir


def section(html: str, family: str) -> str:
    match = re.search(rf'<section id="family-{family}".*?</section>', html, re.S)
    assert match, f"no section for family {family}"
    return match.group(0)


def test_one_run_has_a_section_per_family_with_its_numbers_and_conventions(tmp_path: Path) -> None:
    metrics = {"cls/acc": 0.8125, "cal/ece": 0.03125, "ood/mnist/auroc": 0.875, "fair/sex/dpd": 0.25}
    html = render_report([make_run(tmp_path / "run", metrics)])
    assert re.findall(r'data-family="(\w+)"', html) == ["cls", "cal", "ood", "fair"]
    assert "0.8125" in section(html, "cls") and "0.0312" in section(html, "cal")
    assert "OOD is the positive class" in section(html, "ood") and "0.8750" in section(html, "ood")
    assert "unsigned" in section(html, "fair") and "0.2500" in section(html, "fair")


def test_paper_numbers_stand_beside_ours(tmp_path: Path) -> None:
    paper = {"citation": "van Amersfoort et al. (ICML 2020)", "metrics": {"cls/acc": 0.924}}
    html = render_report([make_run(tmp_path / "run", {"cls/acc": 0.9}, paper=paper)])
    row = re.search(r"<code>cls/acc</code>.*?</tr>", section(html, "cls"), re.S).group(0)
    assert re.findall(r'class="num">([^<]*)<', row) == ["0.9000", "0.9240"]
    assert "van Amersfoort et al. (ICML 2020)" in html


def test_plots_are_embedded_byte_for_byte_so_the_page_needs_no_other_file(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", {"cls/acc": 0.5, "cal/ece": 0.1})
    probs = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]])
    png = reliability_diagram(probs, torch.tensor([0, 1, 1, 1]), run_dir / "plots" / "reliability.png")
    html = render_report([run_dir])
    sources = re.findall(r'<img src="data:image/png;base64,([^"]+)"', section(html, "cal"))
    assert [base64.b64decode(s) for s in sources] == [png.read_bytes()]
    assert re.findall(r'src="(?!data:)', html) == []


def test_weights_fingerprint_config_and_failed_families_are_shown(tmp_path: Path) -> None:
    families = {
        "cls": {"status": "ok"},
        "cf": {"status": "failed", "error": "RuntimeError: dice diverged\nTrace"},
    }
    run_dir = make_run(tmp_path / "run", {"cls/acc": 0.75}, weights="3f2a9c", families=families)
    html = render_report([run_dir])
    assert "3f2a9c" in section_of(html, "provenance") and "name: erm" in section_of(html, "provenance")
    failed = section(html, "cf")
    assert "RuntimeError: dice diverged" in failed and "Trace" not in failed and "failed" in failed


def section_of(html: str, section_id: str) -> str:
    return re.search(rf'<section id="{section_id}".*?</section>', html, re.S).group(0)


def test_text_from_records_is_escaped(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", {}, status="failed", error="ValueError: <script>alert(1)</script>")
    html = render_report([run_dir])
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_sweep_shows_mean_and_std_per_group_with_failed_runs_and_their_reasons(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    make_run(sweep / "0", {"cls/acc": 0.8, "fair/sex/dpd": 0.1}, method="erm")
    make_run(sweep / "1", {"cls/acc": 0.9, "fair/sex/dpd": 0.3}, method="erm")
    make_run(sweep / "2", {"cls/acc": 0.7, "fair/sex/dpd": 0.05}, method="w2reg")
    make_run(sweep / "3", {}, method="w2reg", status="failed", error="NonFiniteLossError: loss is nan")
    html = render_report([sweep])
    # sample std (ddof=1) of 0.8 and 0.9 is 0.1/√2 = 0.0707; of 0.1 and 0.3 it is 0.1414
    assert "0.8500 ± 0.0707" in section(html, "cls") and "0.2000 ± 0.1414" in section(html, "fair")
    w2reg = re.search(r"<td>w2reg</td>.*?</tr>", section(html, "cls"), re.S).group(0)
    assert re.findall(r'class="num">([^<]*)<', w2reg) == ["1", "1", "0.7000"]
    assert "NonFiniteLossError: loss is nan" in section_of(html, "runs")


def test_no_run_under_the_paths_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no runs found"):
        render_report([tmp_path])


def test_report_command_renders_a_real_run_and_refuses_a_bad_path_in_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trustbench("run", *FAST, f"hydra.run.dir={run_dir}")
    assert trustbench("report", str(run_dir)).stdout.strip() == f"report: {run_dir / 'report.html'}"
    html = (run_dir / "report.html").read_text()
    assert f"{result(run_dir)['metrics']['cls/acc']:.4f}" in section(html, "cls")
    assert "data:image/png;base64," in section(html, "cal")
    missing = trustbench("report", str(tmp_path / "nope"), check=False)
    assert missing.returncode != 0
    assert missing.stderr.strip() == f"trustbench report: no such file or directory: {tmp_path / 'nope'}"
