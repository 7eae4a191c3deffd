"""Validate a registered candidate: against its group's champion, report stored in the registry.

The steps ``pumpops validate`` and a retraining run share: pick the champion to
compare with (:func:`rival_champion`), download both models, run the gates
(:func:`~pumpops.validation.validate_model`) and store the report on the
candidate (:func:`validate_candidate`). The registry is any object with the
three methods of :class:`CandidateRegistry` (``pumpops.registry.Registry``):
this package does not import the registry.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pumpops.validation._gates import ValidationReport

if TYPE_CHECKING:
    from pumpops.validation._config import ValidationConfig


class CandidateRegistry(Protocol):
    """What validating a candidate needs of the model registry."""

    def champion(self, group: str) -> Any | None:
        """The group's current champion version, if any."""
        ...

    def download_model(self, info: Any, dest: Path) -> Path:
        """Download a version's model folder to ``dest``; return the folder."""
        ...

    def store_validation(
        self, info: Any, *, passed: bool, report_json: str, against: Any | None, actor: str
    ) -> Any:
        """Store a validation report on a version; return the version as now registered."""
        ...


@dataclass(frozen=True)
class CandidateValidation:
    """What :func:`validate_candidate` did: the report, who it was compared with, the stored version."""

    report: ValidationReport
    champion: Any | None
    stored: Any


def rival_champion(registry: CandidateRegistry, group: str | None, candidate: Any) -> Any | None:
    """The champion to validate ``candidate`` against: the group's, unless none or the candidate itself."""
    if not group:
        return None
    champion = registry.champion(group)
    if champion is not None and champion.ref == candidate.ref:
        return None
    return champion


def validate_candidate(
    registry: CandidateRegistry,
    candidate: Any,
    *,
    champion: Any | None,
    actor: str,
    config: ValidationConfig | None = None,
    data: Path | str | int | None = None,
    measuring: Callable[[], AbstractContextManager[Any]] | None = None,
) -> CandidateValidation:
    """Run the gates on a registered candidate (against ``champion``) and store the report on it.

    ``measuring`` wraps the measurement (e.g. a console status line). A failed
    validation is a report with ``passed`` false, stored like a passed one.
    """
    from pumpops import validation  # noqa: PLC0415 - through the package: a replaced validate_model is honoured

    with tempfile.TemporaryDirectory(prefix="pumpops-validate-") as tmp:
        candidate_dir = registry.download_model(candidate, Path(tmp) / "candidate")
        champion_dir = None if champion is None else registry.download_model(champion, Path(tmp) / "champion")
        with measuring() if measuring is not None else nullcontext():
            report = validation.validate_model(
                candidate_dir, champion_dir=champion_dir, config=config, data=data, subject=candidate.ref
            )
    report_json = report.to_json()
    if isinstance(report_json, bytes):
        report_json = report_json.decode("utf-8")
    stored = registry.store_validation(
        candidate, passed=bool(report.passed), report_json=str(report_json), against=champion, actor=actor
    )
    return CandidateValidation(report, champion, stored)
