"""``validation.toml``: the tolerances, budgets and measurement settings of the gates, with defaults.

Every key is optional; unknown keys are an error (``extra="forbid"``), so a
typo never silently leaves a default in place. See ``docs/validation.md``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pumpops.errors import ConfigError
from pumpops.validation._gates import (
    BehaviourBudgets,
    ChampionTolerances,
    ParityTolerance,
    ResourceBudgets,
)

__all__ = ["ValidationConfig", "load_validation_config"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParitySection(_Section):
    """``[parity]``."""

    max_abs_diff: float = Field(default=1e-4, gt=0, le=1.0)


class ChampionSection(_Section):
    """``[champion]``."""

    f1_tolerance: float = Field(default=0.02, ge=0, le=1)
    far_tolerance: float = Field(default=0.01, ge=0, le=1)
    delay_tolerance_s: float = Field(default=60.0, ge=0, le=86_400)


class BehaviourSection(_Section):
    """``[behaviour]``."""

    max_fault_delay_s: float = Field(default=900.0, gt=0, le=86_400)
    max_normal_far: float = Field(default=0.02, ge=0, le=1)
    max_drift_alarm_rate: float = Field(default=0.25, ge=0, le=1)


class BudgetsSection(_Section):
    """``[budgets]``."""

    max_model_bytes: int = Field(default=5_000_000, gt=0)
    max_latency_ms: float = Field(default=5.0, gt=0)
    max_peak_memory_mb: float = Field(default=64.0, gt=0)


class MeasurementSection(_Section):
    """``[measurement]``: how the thin layer measures (not judged, but recorded in the report)."""

    latency_runs: int = Field(default=200, ge=5, le=100_000)
    memory_batch_windows: int = Field(default=256, ge=1, le=100_000)
    score_batch_windows: int = Field(default=2048, ge=1, le=1_000_000)
    calibration_s: float = Field(default=1800.0, ge=60, le=7 * 86_400)
    test_s: float = Field(default=3600.0, ge=300, le=7 * 86_400)
    event_start_s: float = Field(default=600.0, ge=0, le=7 * 86_400)
    gradual_wear: bool = True
    fault_severity: float = Field(default=1.0, gt=0, le=1)
    setpoint_factor: float = Field(default=0.9, ge=0.5, le=1.1)
    simulate_seed: int = Field(default=0, ge=0, le=2**32 - 1)


class ValidationConfig(_Section):
    """The whole ``validation.toml``."""

    parity: ParitySection = ParitySection()
    champion: ChampionSection = ChampionSection()
    behaviour: BehaviourSection = BehaviourSection()
    budgets: BudgetsSection = BudgetsSection()
    measurement: MeasurementSection = MeasurementSection()

    def parity_tolerance(self) -> ParityTolerance:
        """The parity gate's tolerance."""
        return ParityTolerance(**self.parity.model_dump())

    def champion_tolerances(self) -> ChampionTolerances:
        """The champion gate's tolerances."""
        return ChampionTolerances(**self.champion.model_dump())

    def behaviour_budgets(self) -> BehaviourBudgets:
        """The behavioural gate's budgets."""
        return BehaviourBudgets(**self.behaviour.model_dump())

    def resource_budgets(self) -> ResourceBudgets:
        """The budgets gate's limits."""
        return ResourceBudgets(**self.budgets.model_dump())


def parse_validation_config(data: dict[str, Any], *, source: str = "<config>") -> ValidationConfig:
    """Validate a parsed TOML document.

    Raises:
        ConfigError: unknown key or value out of bounds (naming it).

    >>> parse_validation_config({"budgets": {"max_latency_ms": 2}}).budgets.max_latency_ms
    2.0
    >>> parse_validation_config({"budget": {}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pumpops.errors.ConfigError: <config>: budget: Extra inputs are not permitted
    """
    try:
        return ValidationConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def load_validation_config(path: Path | None) -> ValidationConfig:
    """Read ``validation.toml`` (None: every default).

    Raises:
        ConfigError: the file cannot be read, is not TOML, or fails validation.
    """
    if path is None:
        return ValidationConfig()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read validation config {path}: {exc}") from exc
    return parse_validation_config(data, source=str(path))
