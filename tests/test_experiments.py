"""Every experiment config runs end to end through `trustbench run` for one batch, on tiny fake files.

The data dir holds a few images of each dataset in its real on-disk format (`fake_datasets`), so each
experiment reads, trains, evaluates and tabulates exactly as it would on the real files. An experiment
that sweeps detectors sweeps three here, one per way a detector meets the model: msp (logits only),
knn (cached penultimate features) and odin (runs the network on perturbed inputs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import result, trustbench
from fake_datasets import write_data_dir
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode

from trustbench.app import CONFIG_DIR
from trustbench.cli import config_choices

# Detector sweeps are smoked on a logit, a feature and a network detector; other sweeps on all methods.
SMOKE_DETECTORS = ("msp", "knn", "odin")
# The second-wave counterfactual tables are smoked on two of their new explainers (the others run the same
# suite path; each has its own tests): the amortised map and the line search, with every column of the
# table. Both search a VAE, trained for one epoch here (Adult is the real 27k rows: 20 epochs took 100 s).
SMOKE_EXPLAINERS = {
    "cf_mnist_wave2": ("glam_clue", "sharpshooter"),
    "cf_adult_wave2": ("sharpshooter", "glam_clue"),
}
ONE_EPOCH_VAE = "++method.explainer.hparams.generative.epochs=1"
# Sweeps smoked on fewer methods, each covering a code path: the supervisor table on erm (every post-hoc
# supervisor) and mc_dropout (sampled scores); UQGAN's protocol on uqgan (the uncertainty suite) and entropy
# (the OOD suite on the same data).
SMOKE_SWEEPS = {
    "supervisors_mnist": ("erm", "mc_dropout"),
    "supervisors_fashion_mnist": ("erm", "mc_dropout"),
    "uqgan_mnist": ("uqgan", "entropy"),
    "deduce_mnist": ("deduce",),
}
# Step budgets of explainers whose search runs to its limit on a one-batch model: DeDUCE's 700 steps were
# half of deduce_mnist's smoke run (its default budget runs in tests/test_counterfactual_runner.py, REVISE,
# the sweep's other explainer, in its Adult test and tests/test_explainers_latent.py).
SMOKE_BUDGETS = {"deduce_mnist": ("++method.explainer.hparams.max_steps=50",)}
# One training batch and one validation batch, on the CPU whatever the experiment asks for. The fake
# sets have 20 training images, so the validation split and the batches are made to fit them. No figures:
# drawing was a third of these runs' CPU, and each suite's plots are checked by its own tests.
ONE_BATCH = (
    "plots=false",
    "trainer=cpu",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=1",
    "+trainer.limit_val_batches=1",
    "data.val_size=5",
    "data.batch_size=8",
)
DETECTOR_METRICS = {"cls/acc", "ood/near/auroc", "ood/far/auroc"}  # far only where the data has far sets


@dataclass(frozen=True)
class Experiment:
    """What an experiment config declares about how it runs and what it reports."""

    name: str
    sweeps: bool  # hydra.mode is MULTIRUN
    swept_methods: tuple[str, ...]  # the methods its sweeper goes through, if it sweeps over method
    pinned: tuple[str, ...]  # overrides running only the first value of every swept key but method
    table_metrics: tuple[str, ...]  # the columns its PrintTable callback prints, if it has one
    prints_supervisor_table: bool  # its table is the supervisor table (rows model × supervisor)
    has_paper: bool
    smaller: tuple[str, ...]  # overrides shrinking its evaluation for the smoke run (smaller_evaluation)


def smaller_evaluation(cfg) -> tuple[str, ...]:
    """Fewer points explained, fewer stress levels and resamples, only the stress transforms and shift
    severities the table shows, one corruption, a Wide ResNet of depth 10 and width 1, a ResNet-18 8
    channels wide: the same code paths and keys (the key levels ±1 stay) at a fraction of the cost
    (stress_adult's smoke run: 76 s of CPU before; sngp_cifar10's 30 s -> 10 s)."""
    overrides = []
    table = cfg.hydra.callbacks.get("table")
    keys = (table.get("metrics") or []) if table else []  # the metrics its printed table shows
    if cfg.data.get("stress"):
        overrides += ["data.stress.levels=3", "data.stress.bootstrap=2"]
        shown = sorted({key.split("/")[3] for key in keys if key.startswith("stress/")})
        if shown:  # only the transforms its table shows (the others are the stress suite tests' business)
            overrides.append(f"data.stress.transforms=[{','.join(shown)}]")
    shift = cfg.data.get("shift")
    if shift:  # one corruption, at the severities the table shows
        severities = sorted({key.split("/")[2] for key in keys if key.startswith("shift/mean/")}, key=int)
        overrides.append(f"data.shift.corruptions=[{shift.corruptions[0]}]")
        if severities:
            overrides.append(f"data.shift.severities=[{','.join(severities)}]")
    if cfg.backbone.net.get("widen_factor"):  # WRN-28-10's 36M weights: the same class at 10-1 (~77k)
        overrides += ["backbone.net.depth=10", "backbone.net.widen_factor=1"]
    if cfg.backbone.net.get("base_width"):  # ResNet-18's 11M weights: the same class 8 channels wide (176k)
        overrides.append("backbone.net.base_width=8")
    if "explain" in cfg.method:
        overrides.append("method.explain.points=3")
        for view in ("prototypes", "oracle"):  # the models these columns score with: one epoch
            if cfg.method.explain.get(view) is not None:
                overrides.append(f"++method.explain.{view}.epochs=1")
    splits = cfg.data.get("class_splits")
    if splits and len(next(iter(splits.values()))) == 1:  # one class: a few of the fake set's 20 images
        overrides.append("data.val_size=1")
    if cfg.data.get("supervisors"):  # 20 training images: detectors that fit on them, a 4-point grid
        overrides += [
            "data.supervisors.points=4",
            "+data.supervisors.steps=2",
            "+data.supervisors.vae_epochs=1",
            "+data.supervisors.detectors=[msp,deepgini,dsa,mdsa,odin]",
            "data.supervisors.ambiguess.pairs=[[0,1]]",
            "+data.supervisors.ambiguess.epochs=1",
            "+data.supervisors.ambiguess.samples_per_pair=4",
            "+data.supervisors.ambiguess.anchors_per_dim=4",
        ]
    return tuple(overrides)


def first_value(key: str, values: object) -> str:
    """The first value a sweeper's `key: values` runs (a list `a,b`, `range(20)`, ...), as Hydra parses it."""
    override = OverridesParser.create().parse_overrides([f"{key}={values}"])[0]
    if override.is_sweep_override():
        return next(iter(override.sweep_string_iterator()))
    return override.get_value_element_as_str()


def describe(name: str) -> Experiment:
    """Inside `initialize_config_dir` (once for all experiments: a third of each description's time)."""
    cfg = compose("config", overrides=[f"experiment={name}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.get("params") or {}
    swept = params.get("method")
    table = cfg.hydra.callbacks.get("table")
    return Experiment(
        name,
        sweeps=cfg.hydra.mode == RunMode.MULTIRUN,
        swept_methods=tuple(swept.split(",")) if swept else (),
        pinned=tuple(  # a command-line value beats the sweeper's list
            f"{key}={first_value(key, values)}" for key, values in params.items() if key != "method"
        ),
        table_metrics=tuple(table.get("metrics") or ()) if table else (),
        prints_supervisor_table=bool(table) and table._target_.endswith("PrintSupervisorTable"),
        has_paper=cfg.paper is not None,
        smaller=smaller_evaluation(cfg)
        + ((ONE_EPOCH_VAE,) if name in SMOKE_EXPLAINERS else ())
        + SMOKE_BUDGETS.get(name, ()),
    )


with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
    EXPERIMENTS = [describe(name) for name in config_choices("experiment")]
# Smoke runs kept out of the default test run (make test-slow runs them): the image regression experiments
# (~17-24 s each on the loaded 2-core machine); uci_regression smokes the same six regression methods.
# cf_adult_wave2 trains on all 27k Adult rows (~70 s on the loaded machine); cf_mnist_wave2 smokes the same
# suite path and explainers.
# supervisors_fashion_mnist runs the code of supervisors_mnist on other data.
# osr_fashion_mnist and novelty_fashion_mnist run the code of their MNIST twins on other data;
# confident_errors_tabular trains an ensemble and MC dropout on Adult (~22 s of CPU), and
# tests/test_confident_errors.py runs its suite on German credit.
SLOW_SMOKE = frozenset(
    {
        "car_rotated_mnist",
        "slurp_rotated_mnist",
        "slurp_mnist_distance",
        "cf_adult_wave2",
        "supervisors_fashion_mnist",
        "osr_fashion_mnist",
        "novelty_fashion_mnist",
        "confident_errors_tabular",
    }
)


def smoke_params(names: list[str]) -> list:
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_SMOKE else name for name in names]


@dataclass(frozen=True)
class SmokeRun:
    experiment: Experiment
    stdout: str
    job_dirs: tuple[Path, ...]

    @property
    def methods(self) -> tuple[str, ...]:
        return smoke_methods(self.experiment)

    def records(self) -> list[dict]:
        return [result(job) for job in self.job_dirs]


def smoke_methods(experiment: Experiment) -> tuple[str, ...]:
    """The methods a smoke run of a sweeping experiment runs: a few detectors or explainers, or its whole
    sweep."""
    if experiment.name in SMOKE_EXPLAINERS:
        return SMOKE_EXPLAINERS[experiment.name]
    if experiment.name in SMOKE_SWEEPS:
        return SMOKE_SWEEPS[experiment.name]
    if set(SMOKE_DETECTORS) <= set(experiment.swept_methods):
        return SMOKE_DETECTORS
    return experiment.swept_methods


def run_for_one_batch(experiment: Experiment, data_dir: Path, root: Path) -> SmokeRun:
    if experiment.sweeps:
        where = [
            f"hydra.sweep.dir={root / 'sweep'}",
            "hydra.sweep.subdir=${method.name}",
            f"hydra.sweeper.params.method='{','.join(smoke_methods(experiment))}'",  # quoted: one value
        ]
        # one seed, split, dataset...: the jobs of a method would share its job dir here
        where += experiment.pinned
        job_dirs = tuple(root / "sweep" / method for method in smoke_methods(experiment))
    else:
        where = [f"hydra.run.dir={root / 'run'}"]
        job_dirs = (root / "run",)
    proc = trustbench(
        "run",
        f"experiment={experiment.name}",
        *ONE_BATCH,
        *experiment.smaller,
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={root}",
        *where,
    )
    return SmokeRun(experiment, proc.stdout, job_dirs)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], SmokeRun]:
    """Runs an experiment on the fake data dir the first time a test asks for it, then reuses the run."""
    data_dir = write_data_dir(tmp_path_factory.mktemp("data"))
    runs: dict[str, SmokeRun] = {}

    def run(name: str) -> SmokeRun:
        if name not in runs:
            experiment = next(e for e in EXPERIMENTS if e.name == name)
            runs[name] = run_for_one_batch(experiment, data_dir, tmp_path_factory.mktemp(name))
        return runs[name]

    return run


def markdown_rows(text: str) -> list[dict[str, str]]:
    """The body rows of the one Markdown table in `text`, as {column: cell}."""
    lines = [line.strip().strip("|") for line in text.splitlines() if line.startswith("|")]
    if not lines:
        return []
    header = [cell.strip() for cell in lines[0].split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.split("|")), strict=True)) for line in lines[2:]]


def benchmark_table(run: SmokeRun) -> list[dict[str, str]]:
    """The benchmark table of the run: printed by a sweep, asked of `trustbench table` for a single run."""
    if run.experiment.sweeps:
        return markdown_rows(run.stdout)
    metrics = sorted({key for record in run.records() for key in record["config"]["paper"]["metrics"]})
    paths = [str(job) for job in run.job_dirs]
    return markdown_rows(trustbench("table", *paths, "--by", "method", "--metrics", ",".join(metrics)).stdout)


@pytest.mark.parametrize("name", smoke_params([e.name for e in EXPERIMENTS]))
def test_every_job_finishes_ok_with_the_metrics_its_experiment_shows(
    smoke: Callable[[str], SmokeRun], name: str
) -> None:
    run = smoke(name)
    records = run.records()
    if run.experiment.sweeps:
        assert [record["config"]["method"]["name"] for record in records] == list(run.methods)
    for record in records:
        assert record["status"] == "ok", record["error"]
        metrics = record["metrics"]
        paper = record["config"]["paper"] or {"metrics": {}}
        classless = record["config"]["data"].get("task") == "regression" or (
            record["config"]["method"]["evaluation"] == "novelty"  # a one-class model has no accuracy
        )
        headline = () if classless else ("cls/acc",)
        shown = {*headline, *run.experiment.table_metrics, *paper["metrics"]}
        assert shown <= set(metrics)
        if run.methods == SMOKE_DETECTORS:
            far_sets = record["config"]["data"]["ood_benchmark"]["far"]
            assert DETECTOR_METRICS - ({"ood/far/auroc"} if not far_sets else set()) <= set(metrics)
        # NaN is the defined answer on these tiny sets for: shift/* error-AUROC and Spearman (a corrupted set
        # all right or all wrong; fail/* and ce/* likewise on the test split), fair/* rates of a group without
        # positives, cf/* distances when a barely
        # trained model lets no counterfactual reach its target, stress/* DI of a model that selects no one;
        # infinite: a conformal interval calibrated on 5 validation rows (fewer than 9 cannot give 90 %)
        undefined_allowed = ("shift/", "fail/", "ce/", "fair/", "cf/", "stress/")
        undefined_allowed += ("reg/conformal_q", "reg/width90")
        defined = {key: value for key, value in metrics.items() if not key.startswith(undefined_allowed)}
        assert all(math.isfinite(value) for value in defined.values())
        fractions = {key: value for key, value in metrics.items() if key.startswith(("cls/acc", "ood/"))}
        assert {key: value for key, value in fractions.items() if not 0.0 <= value <= 1.0} == {}


@pytest.mark.parametrize(
    "name", smoke_params([e.name for e in EXPERIMENTS if e.sweeps and not e.prints_supervisor_table])
)
def test_the_printed_table_has_one_row_of_ours_per_swept_method(
    smoke: Callable[[str], SmokeRun], name: str
) -> None:
    run = smoke(name)
    ours = [row for row in markdown_rows(run.stdout) if row["source"] == "ours"]
    assert sorted(row["method"] for row in ours) == sorted(run.methods)
    assert all((row["runs"], row["failed"]) == ("1", "0") for row in ours)


@pytest.mark.parametrize("name", smoke_params([e.name for e in EXPERIMENTS if e.prints_supervisor_table]))
def test_the_supervisor_table_has_a_row_per_supervisor_of_each_swept_method(
    smoke: Callable[[str], SmokeRun], name: str
) -> None:
    run = smoke(name)
    rows = markdown_rows(run.stdout)
    assert {row["model"] for row in rows} == set(run.methods)
    assert all(row[column] != "–" for row in rows for column in ("ambiguous", "invalid", "corrupted"))
    erm = {row["supervisor"] for row in rows if row["model"] == "erm"}
    assert erm == {"erm", "msp", "deepgini", "dsa", "mdsa", "odin", "vae"}
    sampled = {row["supervisor"] for row in rows if row["model"] == "mc_dropout"}
    assert sampled == {
        f"mc_dropout_{score}" for score in ("entropy", "mutual_information", "variation_ratio")
    }


@pytest.mark.parametrize("name", [e.name for e in EXPERIMENTS if e.has_paper])
def test_paper_rows_carry_the_configured_numbers_beside_ours(
    smoke: Callable[[str], SmokeRun], name: str
) -> None:
    run = smoke(name)
    rows = benchmark_table(run)
    for record in run.records():
        method, paper = record["config"]["method"]["name"], record["config"]["paper"]
        sources = {row["source"]: row for row in rows if row["method"] == method}
        assert {"ours", paper["citation"]} <= set(sources)
        for key, value in paper["metrics"].items():
            assert float(sources[paper["citation"]][key]) == pytest.approx(value, abs=5e-5)


def test_openood_rows_show_the_published_openood_v1_5_numbers(smoke: Callable[[str], SmokeRun]) -> None:
    published = {"msp": (0.8803, 0.9073), "knn": (0.9064, 0.9296), "odin": (0.8287, 0.8796)}
    rows = markdown_rows(smoke("openood_cifar10").stdout)
    paper = {row["method"]: row for row in rows if row["source"] == "OpenOOD v1.5 (Zhang et al. 2023)"}
    assert sorted(paper) == sorted(published)
    for method, (near, far) in published.items():
        shown = paper[method]
        assert float(shown["ood/near/auroc"]) == near and float(shown["ood/far/auroc"]) == far
        assert float(shown["cls/acc"]) == 0.9506
