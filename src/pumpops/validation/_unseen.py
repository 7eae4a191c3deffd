"""Champion and challenger are compared on pumps neither was fitted on (issue 14, fleet data).

A model folder's ``lineage.json`` names the pumps whose rows fitted the model
(``fit_devices``, written by ``pumpops train``; a model trained before the
per-device split fitted on every pump it calibrated, ``devices``). Validation
scores pumps too: the simulated suite's fresh pumps (``val-0001`` …, the
report's ``context.data.devices``), calibrated on their own normal period as a
new pump of the group is. A pump's identity is its device id (the simulator
draws a pump's constants from the scenario seed and its id). When a pump that
validation scored is one the candidate or the champion was fitted on, the
comparison is refused: that pump's figures are in-sample for that model.

SKAB-format files are checked by content in ``_run.py`` (``fitted_on_scored_rows``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pumpops.errors import ConfigError

__all__ = ["check_pumps_unseen", "fitted_devices", "scored_devices"]


def fitted_devices(model_dir: Path) -> set[str]:
    """The pumps whose rows fitted the model in ``model_dir`` (empty when it says nothing).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "lineage.json").write_text('{"devices": ["a", "b"], "fit_devices": ["a"]}')
    ...     sorted(fitted_devices(Path(tmp)))
    ['a']
    """
    try:
        lineage = json.loads((Path(model_dir) / "lineage.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(lineage, dict):
        return set()
    # before the per-device split (no "fit_devices"), every calibrated pump was fitted on
    devices = lineage.get("fit_devices", lineage.get("devices", []))
    return {str(d) for d in devices} if isinstance(devices, list) else set()


def scored_devices(context: Mapping[str, Any]) -> set[str]:
    """The pumps a validation report scored, from its context (the simulated suite lists them).

    >>> sorted(scored_devices({"data": {"devices": {"val-0001": "fault:x"}}, "behaviour_data": None}))
    ['val-0001']
    """
    out: set[str] = set()
    for key in ("data", "behaviour_data"):
        source = context.get(key)
        if isinstance(source, Mapping) and isinstance(source.get("devices"), Mapping):
            out |= {str(d) for d in source["devices"]}
    return out


def check_pumps_unseen(models: Mapping[str, Path | None], scored: Iterable[str]) -> None:
    """Refuse a comparison on pumps the candidate or the champion was fitted on.

    Args:
        models: ``{"candidate": folder, "champion": folder or None}``.
        scored: the pumps validation scored.

    Raises:
        ConfigError: a model was fitted on a scored pump; the message names the model and the pumps.
    """
    scored_set = set(scored)
    for who, folder in models.items():
        if folder is None:
            continue
        seen = sorted(fitted_devices(folder) & scored_set)
        if seen:
            raise ConfigError(
                f"the {who} was fitted on {len(seen)} pump(s) that validation scored "
                f"({', '.join(seen[:5])}): its figures there are in-sample. Compare champion and "
                "challenger on pumps neither was fitted on: train with [evaluation] split = 'by_device' "
                "leaving these pumps out "
                "(evaluation.holdout_devices), or validate on data of other pumps"
            )
