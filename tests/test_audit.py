"""`trustbench audit`: one model, every family that applies, the same numbers as separate runs on that
model, one broken member never loses the others, and a killed audit resumes to the same numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CLI_ENV, REPO, cli_command, result, trustbench

from trustbench.audit.members import namespaced
from trustbench.audit.plan import Member, plan_members
from trustbench.audit.summary import member_rows
from trustbench.report.render import render_report

IMAGES = ["data=synthetic_image", "backbone=lenet", "trainer.max_epochs=8", "data.batch_size=32"]
MEMBERS = [
    "audit.detectors=[msp,energy,knn,vim]",
    "audit.explainers.image=[deduce]",
    "audit.points=4",
    "audit.attributions.image=[saliency]",
]
TABLES = ["data=german", "trainer.max_epochs=3"]  # real credit rows, groups age and sex
TIMING_KEYS = ("seconds_per_cf", "seconds_per_map", "fit_seconds")


def audit(root: Path, name: str, *overrides: str) -> Path:
    run_dir = root / name
    trustbench("audit", *overrides, f"paths.output_dir={root / 'outputs'}", f"hydra.run.dir={run_dir}")
    return run_dir


@pytest.fixture(scope="module")
def image_audit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return audit(tmp_path_factory.mktemp("audit"), "run", *IMAGES, *MEMBERS, "logger=wandb")


def without_timing(metrics: dict[str, float]) -> dict[str, float | str]:
    """The metrics but wall times; NaN (a key undefined for a member, e.g. one-per-input diversity) as the
    string "nan", so two records compare equal when they hold the same numbers."""
    return {k: "nan" if v != v else v for k, v in metrics.items() if not k.endswith(TIMING_KEYS)}


def test_every_member_reports_under_its_own_keys_on_one_set_of_weights(image_audit: Path) -> None:
    record = result(image_audit)
    metrics, families = record["metrics"], record["families"]
    assert record["status"] == "ok" and len(record["weights"]) == 32
    assert set(families) == {
        "uncertainty",
        "fair",
        "stress",
        "ood/msp",
        "ood/energy",
        "ood/knn",
        "ood/vim",
        "cf/deduce",
        "xai/saliency",
    }
    assert families["fair"] == {
        "status": "skipped",
        "error": "synthetic_image has no protected groups",
        "seconds": 0.0,
    }
    assert families["stress"]["status"] == "skipped"  # synthetic_image names no data.stress
    assert all(families[m]["status"] == "ok" for m in families if m not in ("fair", "stress"))
    assert {
        "cls/acc",
        "cal/ece",
        "sc/aurc",
        "ood/knn/near/auroc",
        "hp/knn/k",
        "cf/deduce/validity",
        "xai/saliency/deletion_auc",
    } <= set(metrics)
    assert not any(k.startswith(("ood/knn/cls", "cf/deduce/cls", "xai/saliency/cls")) for k in metrics)
    outcomes = [json.loads(p.read_text()) for p in (image_audit / "families").glob("*/outcome.json")]
    assert {o["weights"] for o in outcomes} == {record["weights"]}


def test_the_audit_gives_the_numbers_of_separate_runs_on_the_same_model(image_audit: Path) -> None:
    outputs = image_audit.parent / "outputs"
    assert len(list((outputs / ".models").glob("*.pt"))) == 1  # the audit stored its classifier
    audited = result(image_audit)["metrics"]
    for detector in ("knn", "vim"):
        separate = image_audit.parent / f"separate_{detector}"
        trustbench(
            "run", *IMAGES, f"method={detector}", f"paths.output_dir={outputs}", f"hydra.run.dir={separate}"
        )
        assert not (separate / "checkpoints").exists(), "a post-hoc run after the audit must not train"
        for key, value in result(separate)["metrics"].items():
            if key.startswith(("ood/", "hp/")):
                family, rest = key.split("/", 1)
                assert audited[f"{family}/{detector}/{rest}"] == value, key
    assert len(list((outputs / ".models").glob("*.pt"))) == 1


def test_the_report_has_a_section_per_family_and_a_row_per_member(image_audit: Path) -> None:
    html = (image_audit / "report.html").read_text()
    assert html == render_report([image_audit])
    for family in ("cls", "cal", "sc", "ood", "cf", "fair"):
        assert f'data-family="{family}"' in html
    for detector in ("msp", "energy", "knn", "vim"):
        assert f"<td><code>{detector}</code></td>" in html
    assert "synthetic_image has no protected groups" in html
    assert (image_audit / "plots" / "ood" / "detectors_auroc.png").is_file()
    assert (image_audit / "families" / "cf.deduce" / "plots" / "counterfactuals.png").is_file()


def test_the_audit_report_opens_in_chromium_with_every_image_decoded(image_audit: Path, chromium) -> None:
    chromium.set_window_size(1280, 900)
    chromium.get((image_audit / "report.html").as_uri())
    sections = chromium.execute_script(
        "return [...document.querySelectorAll('section.family')].map(s => s.id)"
    )
    assert {"family-cls", "family-cal", "family-ood", "family-fair", "family-cf"} <= set(sections)
    images = chromium.execute_script(
        "return [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0])"
    )
    assert len(images) >= 3 + 2 * 4 and all(decoded for _, decoded in images)  # own plots, 2 per detector
    assert [entry for entry in chromium.get_log("browser") if entry["level"] == "SEVERE"] == []
    chromium.set_window_size(1280, chromium.execute_script("return document.documentElement.scrollHeight"))
    assert chromium.save_screenshot(str(image_audit / "report_screenshot.png"))


def test_the_report_tables_and_figures_go_to_the_wandb_run(image_audit: Path) -> None:
    (offline_run,) = (image_audit / "wandb").glob("offline-run-*")
    media = offline_run / "files" / "media"
    tables = {path.name.rsplit("_", 2)[0] for path in (media / "table" / "audit").glob("*.table.json")}
    assert tables == {"metrics", "members", "ood", "cf", "xai"}
    members = json.loads(next((media / "table" / "audit").glob("ood_*.table.json")).read_text())
    assert members["columns"][:3] == ["member", "status", "near/auroc"] and len(members["data"]) == 4
    assert list((media / "images" / "audit").glob("detectors_auroc_*.png"))


def test_a_failing_member_is_recorded_and_the_others_are_kept(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    run_dir = audit(
        tmp_path,
        "run",
        *IMAGES,
        "trainer.max_epochs=2",
        "audit.detectors=[msp,energy]",
        "audit.families=[uncertainty,ood]",
        f"data.ood_benchmark.near=[file:{missing}]",
    )
    record = result(run_dir)
    assert record["status"] == "ok"
    assert record["families"]["uncertainty"]["status"] == "ok" and "cls/acc" in record["metrics"]
    for detector in ("msp", "energy"):
        outcome = record["families"][f"ood/{detector}"]
        assert outcome["status"] == "failed" and str(missing) in outcome["error"]
        assert "\n" not in outcome["error"]
    html = (run_dir / "report.html").read_text()
    assert 'class="badge failed">failed' in html and str(missing) in html


def test_a_tabular_audit_skips_the_detectors_and_runs_tabular_explainers_and_fairness(tmp_path: Path) -> None:
    run_dir = audit(
        tmp_path,
        "run",
        *TABLES,
        "audit.explainers.tabular=[wachter,growing_spheres]",
        "audit.points=5",
        "audit.detectors=[msp]",
    )
    record = result(run_dir)
    families = record["families"]
    assert families["ood/msp"]["status"] == "skipped" and "image data" in families["ood/msp"]["error"]
    assert families["fair"]["status"] == "ok" and "fair/age/dpd" in record["metrics"]
    for explainer in ("wachter", "growing_spheres"):
        assert families[f"cf/{explainer}"]["status"] == "ok"
        assert 0.0 <= record["metrics"][f"cf/{explainer}/validity"] <= 1.0
    assert "Changed features" in (run_dir / "report.html").read_text()


def test_a_killed_audit_resumes_to_the_numbers_of_an_uninterrupted_one(
    tmp_path: Path, image_audit: Path
) -> None:
    run_dir = tmp_path / "killed"
    # The uninterrupted audit's model store and feature cache (its weights are loaded, not trained again),
    # and no figures: what is compared is the numbers, and that finished members are not computed again.
    same_model = (f"paths.output_dir={image_audit.parent / 'outputs'}", "plots=false")
    proc = subprocess.Popen(
        cli_command("audit", *IMAGES, *MEMBERS, *same_model, f"hydra.run.dir={run_dir}"),
        cwd=REPO,
        env=CLI_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while len(list(run_dir.glob("families/*/outcome.json"))) < 3 and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in run_dir.glob("families/*/outcome.json")}
    assert not (run_dir / "result.json").exists(), "killed too late: the audit had finished"

    trustbench("audit", *IMAGES, *MEMBERS, *same_model, f"hydra.run.dir={run_dir}")
    resumed = result(run_dir)
    assert without_timing(resumed["metrics"]) == without_timing(result(image_audit)["metrics"])
    assert resumed["weights"] == result(image_audit)["weights"]
    for name, mtime in finished.items():  # finished members were reused, not computed again
        assert (run_dir / "families" / name / "outcome.json").stat().st_mtime_ns == mtime


def test_a_post_hoc_method_cannot_be_the_audited_model() -> None:
    proc = trustbench("audit", *IMAGES, "method=knn", check=False)
    assert proc.returncode != 0
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("trustbench: trustbench audit trains or loads one model")
    )


def test_detector_and_explainer_keys_gain_the_members_name() -> None:
    member = Member("ood/knn", "ood", None)
    metrics = {"cls/acc": 0.9, "ood/mnist/auroc": 0.8, "ood/near/fpr95": 0.3, "hp/k": 50.0}
    assert namespaced(metrics, member) == {
        "ood/knn/mnist/auroc": 0.8,
        "ood/knn/near/fpr95": 0.3,
        "hp/knn/k": 50.0,
    }
    assert namespaced(metrics, Member("uncertainty", "uncertainty", None)) == metrics


def test_member_rows_keep_only_columns_some_member_reports() -> None:
    families = {"ood/knn": {"status": "ok"}, "ood/vim": {"status": "failed", "error": "boom"}, "fair": {}}
    table = member_rows({"ood/knn/near/auroc": 0.75, "ood/knn/far/auroc": 0.5}, families, "ood")
    assert table["columns"] == ["near/auroc", "far/auroc"]
    assert [(r["member"], r["status"]) for r in table["rows"]] == [("knn", "ok"), ("vim", "failed")]
    assert table["rows"][0]["values"] == [0.75, 0.5]


def test_the_plan_applies_each_member_to_the_data_it_suits() -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=["audit=default", "data=adult"])
    members = {m.name: m for m in plan_members(cfg, "tabular", 2, has_groups=True, feature_dim=64)}
    assert [n for n in members if n.startswith("cf/")] == [
        "cf/wachter",
        "cf/dice",
        "cf/growing_spheres",
        "cf/revise",
    ]
    assert all(members[n].skipped for n in members if n.startswith("ood/"))
    assert members["fair"].skipped is None and members["cf/dice"].cfg.method.explain.points == 30
    assert members["stress"].skipped is None and members["stress"].cfg.data.stress.features
    assert members["cf/dice"].cfg.method.explainer.name == "dice"
