"""Which members an audit runs on its one model: the method's own suite, fairness, stress testing, every
OOD detector, counterfactual explainer and attribution method that applies to the data, each with the
config its suite reads.

A member's config is the audit's config with `method` replaced by the member's method config, composed by
Hydra from configs/method/<name>.yaml with the audit's other overrides, so a detector or explainer in an
audit is set up exactly as in `trustbench run method=<name>`. Members that cannot apply are kept with the
reason (shown in the report), never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from trustbench.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
FAMILIES = ("uncertainty", "fairness", "stress", "ood", "counterfactual", "explanations")


@dataclass(frozen=True)
class Member:
    """One evaluation of the audit: `name` keys its outcome ("uncertainty", "fair", "ood/knn", "cf/dice")."""

    name: str
    suite: str
    cfg: DictConfig | None
    skipped: str | None = None

    @property
    def slug(self) -> str:
        """The member's folder name under the run's families/ dir."""
        return self.name.replace("/", ".")

    @property
    def member_of(self) -> str | None:
        """For a detector or explainer, its own name (the segment its metric keys gain); else None."""
        return self.name.split("/", 1)[1] if "/" in self.name else None


def check_audit_choices(cfg: DictConfig) -> None:
    """Raise ConfigError for an audit that cannot work: an unknown family or member, or a post-hoc method
    as the audited model (detectors and explainers are members of the audit, not its model)."""
    audit = cfg.audit
    unknown = [family for family in audit.families if family not in FAMILIES]
    if unknown:
        raise ConfigError(f"audit.families has {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    methods = {path.stem for path in (CONFIG_DIR / "method").glob("*.yaml")}
    named = [
        *audit.detectors,
        *(name for names in audit.explainers.values() for name in names),
        *(name for names in audit.get("attributions", {}).values() for name in names),
    ]
    missing = [name for name in named if name not in methods]
    if missing:
        raise ConfigError(
            f"audit members {', '.join(missing)} are not method configs; see `trustbench list method`"
        )
    if cfg.method.get("posthoc"):
        raise ConfigError(
            f"trustbench audit trains or loads one model and runs detectors and explainers on it; "
            f"method={cfg.method.name} is itself post-hoc: audit method=erm (the default) or a training "
            "method, and name detectors in audit.detectors"
        )


def plan_members(
    cfg: DictConfig, data_kind: str, num_classes: int, has_groups: bool, feature_dim: int | None
) -> list[Member]:
    """The audit's members in run order (cheap families first, so a kill loses the least)."""
    families = list(cfg.audit.families)
    members: list[Member] = []
    if "uncertainty" in families:
        members.append(Member("uncertainty", cfg.method.evaluation, cfg))
    if "fairness" in families:
        members.append(_fairness(cfg, num_classes, has_groups))
    if "stress" in families:
        members.append(_stress(cfg))
    if "ood" in families:
        for name in cfg.audit.detectors:
            members.append(_posthoc(cfg, "ood", name, data_kind, feature_dim))
    if "counterfactual" in families:
        for name in cfg.audit.explainers.get(data_kind, []):
            members.append(_posthoc(cfg, "cf", name, data_kind, feature_dim))
    if "explanations" in families:
        for name in cfg.audit.attributions.get(data_kind, []):
            members.append(_posthoc(cfg, "xai", name, data_kind, feature_dim))
    return members


def _fairness(cfg: DictConfig, num_classes: int, has_groups: bool) -> Member:
    if not has_groups:
        return Member("fair", "fairness", None, f"{cfg.data.name} has no protected groups")
    if num_classes != 2:
        return Member(
            "fair", "fairness", None, f"fairness needs a binary task; {cfg.data.name} has {num_classes}"
        )
    return Member("fair", "fairness", cfg)


def _stress(cfg: DictConfig) -> Member:
    if not cfg.data.get("stress"):
        return Member(
            "stress", "stress", None, f"data {cfg.data.name} names no features to stress (data.stress)"
        )
    return Member("stress", "stress", cfg)


def _posthoc(cfg: DictConfig, family: str, name: str, data_kind: str, feature_dim: int | None) -> Member:
    """A detector (family "ood"), explainer ("cf") or attribution ("xai") member, or the reason it does
    not apply."""
    key = f"{family}/{name}"
    if family == "ood" and (data_kind != "image" or not cfg.data.get("ood_benchmark")):
        return Member(key, "ood", None, "OOD detectors need image data with data.ood_benchmark")
    method = compose_method(name)
    if method.module._target_ != cfg.method.module._target_:
        return Member(
            key,
            method.evaluation,
            None,
            f"{name} reads a {method.module._target_.rsplit('.', 1)[-1]} classifier; the audited model "
            f"is method={cfg.method.name}",
        )
    if method.get("data_kinds") and data_kind not in method.data_kinds:
        return Member(key, method.evaluation, None, f"{name} works on {'/'.join(method.data_kinds)} data")
    if method.get("needs_features") and feature_dim is None:
        return Member(
            key, method.evaluation, None, f"{name} needs penultimate features; the backbone has none"
        )
    member = cfg.copy()
    member.method = method
    if family == "cf":
        OmegaConf.update(member, "method.explain.points", int(cfg.audit.points))
    if family == "xai":  # few points and perturbations: the maps are recomputed for each of them
        OmegaConf.update(member, "method.xai.points", int(cfg.audit.attribution_points))
        OmegaConf.update(member, "method.xai.samples", int(cfg.audit.attribution_samples))
    return Member(key, method.evaluation, member)


def compose_method(name: str) -> DictConfig:
    """configs/method/<name>.yaml as `trustbench run method=<name>` would compose it with this job's other
    overrides (those of `method` itself left out)."""
    overrides = [o for o in _task_overrides() if not _overrides_method(o)] + [f"method={name}"]
    if GlobalHydra.instance().is_initialized():
        return compose("config", overrides=overrides).method
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides).method


def _task_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _overrides_method(override: str) -> bool:
    key = override.lstrip("+~").partition("=")[0].removeprefix("override ").strip()
    return key == "method" or key.startswith("method.") or key.startswith("method/")
