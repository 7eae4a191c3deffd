"""Gates a candidate model must pass: ONNX parity, champion vs challenger, behaviour, budgets, post-drift.

The post-drift gate (``_post_drift.py``) runs for a drift-triggered retrain only.

Decisions are pure functions over measurements (``_gates.py``: no I/O, no
MLflow, no onnxruntime); a thin layer (``_measure.py``) reads a model folder,
builds held-out data (SKAB files or the simulator), scores it with
onnxruntime and the training-time detector, and measures size, latency and
memory. :func:`validate_model` does both; ``pumpops validate-model`` is its
command. The registry calls :func:`validate_model` for ``pumpops validate``.

May import: schema, fleet, sim, pipeline, errors, numpy, onnxruntime, pydantic.
Never MLflow, the store or the registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports
from pumpops.validation._gates import (
    NO_CHAMPION,
    BehaviourBudgets,
    BehaviourMeasurement,
    ChampionTolerances,
    DetectionMetrics,
    GateResult,
    ParityMeasurement,
    ParityTolerance,
    ResourceBudgets,
    ResourceMeasurement,
    ValidationReport,
    check_behaviour,
    check_budgets,
    check_champion,
    check_parity,
    decide,
)
from pumpops.validation._post_drift import (
    PostDriftData,
    PostDriftDevice,
    PostDriftMeasurement,
    check_post_drift,
)

if TYPE_CHECKING:
    from pumpops.validation._config import (
        MeasurementSection,
        ValidationConfig,
        load_validation_config,
        parse_validation_config,
    )
    from pumpops.validation._measure import (
        HeldOut,
        HoldoutDevice,
        simulated_holdout,
        skab_holdout,
        validate_model,
    )
    from pumpops.validation._memory import reset_peak_rss, rss_kib
    from pumpops.validation._post_drift_measure import measure_post_drift
    from pumpops.validation._run import (
        CandidateRegistry,
        CandidateValidation,
        rival_champion,
        validate_candidate,
    )

__all__ = [
    "NO_CHAMPION",
    "BehaviourBudgets",
    "BehaviourMeasurement",
    "CandidateRegistry",
    "CandidateValidation",
    "ChampionTolerances",
    "DetectionMetrics",
    "GateResult",
    "HeldOut",
    "HoldoutDevice",
    "MeasurementSection",
    "ParityMeasurement",
    "ParityTolerance",
    "PostDriftData",
    "PostDriftDevice",
    "PostDriftMeasurement",
    "ResourceBudgets",
    "ResourceMeasurement",
    "ValidationConfig",
    "ValidationReport",
    "check_behaviour",
    "check_budgets",
    "check_champion",
    "check_parity",
    "check_post_drift",
    "decide",
    "load_validation_config",
    "measure_post_drift",
    "parse_validation_config",
    "reset_peak_rss",
    "rival_champion",
    "rss_kib",
    "simulated_holdout",
    "skab_holdout",
    "validate_candidate",
    "validate_model",
]

# The measurement layer pulls in the pipeline and scikit-learn (about a second);
# load it on first use (PEP 562) so the pure gates and every CLI start stay light.
_MEASURE = {"HeldOut", "HoldoutDevice", "simulated_holdout", "skab_holdout", "validate_model"}


# The config loads pydantic: also on first use, so `validate-model --help` and usage errors answer fast.
_CONFIG = {"MeasurementSection", "ValidationConfig", "load_validation_config", "parse_validation_config"}

# Standard library only: the memory probes that packaging shares with validation.
_MEMORY = {"reset_peak_rss", "rss_kib"}

# Validating a registered candidate (downloads, gates, the stored report): loads the measurement layer.
_RUN = {"CandidateRegistry", "CandidateValidation", "rival_champion", "validate_candidate"}


__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        **dict.fromkeys(_MEASURE, "pumpops.validation._measure"),
        **dict.fromkeys(_CONFIG, "pumpops.validation._config"),
        **dict.fromkeys(_MEMORY, "pumpops.validation._memory"),
        **dict.fromkeys(_RUN, "pumpops.validation._run"),
        "measure_post_drift": "pumpops.validation._post_drift_measure",
    },
)
