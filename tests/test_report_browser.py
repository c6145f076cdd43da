"""report.html in a real browser: headless Chromium (Debian's chromium + chromedriver, driven by selenium)
opens the page, finds every family section, every image decoded, no console error, and leaves a
screenshot in the run dir. Skipped, saying why, where no browser is installed (CI installs one)."""

from __future__ import annotations

from pathlib import Path

import torch
from test_report import make_run

from trustbench.metrics.fairness import fairness_report
from trustbench.metrics.ood import ood_metrics
from trustbench.plots.calibration import reliability_diagram
from trustbench.plots.fairness import group_rate_bars
from trustbench.plots.ood import roc_curves, score_histograms
from trustbench.report.render import write_report

SCREENSHOT = "report_screenshot.png"


def audited_run(run_dir: Path) -> Path:
    """A run dir with four families' numbers and their plots, made by trustbench's own metrics and plots
    on a small seeded problem, and one failed family."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (200,), generator=generator)
    logits = torch.randn(200, 2, generator=generator) + 1.5 * torch.nn.functional.one_hot(labels, 2)
    probs = logits.softmax(dim=1)
    id_scores, ood_scores = (
        -probs.max(dim=1).values,
        {"noise": -0.5 - 0.4 * torch.rand(100, generator=generator)},
    )
    group = {"sex": torch.randint(0, 2, (200,), generator=generator)}
    fairness = fairness_report(labels, probs.argmax(dim=1), probs[:, 1], group)
    metrics = {
        "cls/acc": float((probs.argmax(dim=1) == labels).double().mean()),
        **{f"ood/noise/{k}": v for k, v in ood_metrics(id_scores, ood_scores["noise"]).items()},
        **fairness,
    }
    families = {"cf": {"status": "failed", "error": "RuntimeError: the explainer raised"}}
    make_run(run_dir, metrics, weights="0f1e2d3c4b5a69788796a5b4c3d2e1f0", families=families)
    plots = run_dir / "plots"
    reliability_diagram(probs, labels, plots / "reliability.png")
    score_histograms(id_scores, ood_scores, plots / "ood_scores.png")
    roc_curves(id_scores, ood_scores, plots / "ood_roc.png")
    group_rate_bars(fairness, plots / "fairness_groups.png")
    return run_dir


def test_report_opens_in_chromium_with_every_section_and_image_and_no_console_error(
    tmp_path: Path, chromium
) -> None:
    run_dir = audited_run(tmp_path / "run")
    report = write_report([run_dir])
    chromium.set_window_size(1280, 900)
    chromium.get(report.as_uri())
    sections = chromium.execute_script("return [...document.querySelectorAll('section')].map(s => s.id)")
    assert sections == ["family-cls", "family-cal", "family-ood", "family-fair", "family-cf", "provenance"]
    images = chromium.execute_script(
        "return [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0])"
    )
    assert sorted(images) == [[name, True] for name in sorted(p.name for p in (run_dir / "plots").iterdir())]
    assert [entry for entry in chromium.get_log("browser") if entry["level"] == "SEVERE"] == []
    height = chromium.execute_script("return document.documentElement.scrollHeight")
    chromium.set_window_size(1280, height)
    assert chromium.save_screenshot(str(run_dir / SCREENSHOT))
    assert (run_dir / SCREENSHOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
