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
from pumpops.validation._unseen import check_pumps_unseen, scored_devices

if TYPE_CHECKING:
    from pumpops.validation._config import ValidationConfig
    from pumpops.validation._post_drift import PostDriftData


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


#: Rows of each SKAB-format file the validation calibrates on; it scores the rest (``skab_holdout``).
SCORED_FROM_ROW = 400


def _file_digests(folder: Path) -> dict[str, Path]:
    import hashlib  # noqa: PLC0415

    files = [folder] if folder.is_file() else sorted(folder.rglob("*.csv")) if folder.is_dir() else []
    return {hashlib.sha256(f.read_bytes()).hexdigest(): f for f in files}


def fitted_on_scored_rows(model_dir: Path, data: Path) -> list[str]:
    """Files of ``data`` whose scored rows the model in ``model_dir`` was fitted on (issue 14).

    Champion and challenger must be compared on data neither was fitted on.
    A model trained on file data (``pipeline.json``: ``data.source = "files"``)
    fitted on the first ``train_rows`` rows of each file (every row when 0);
    validation scores each file's rows after the first :data:`SCORED_FROM_ROW`.
    A file of ``data`` with the same bytes as a training file is a problem when
    the model fitted on more rows than validation leaves out. Models trained
    from the store are not checked here.
    """
    import json  # noqa: PLC0415

    try:
        config = json.loads((Path(model_dir) / "pipeline.json").read_text())
    except (OSError, ValueError):
        return []
    source = config.get("data", {})
    if source.get("source") != "files":
        return []
    train_rows = int(source.get("train_rows", 0))
    if 0 < train_rows <= SCORED_FROM_ROW:
        return []
    trained: dict[str, Path] = {}
    for path in source.get("paths", []):
        trained |= _file_digests(Path(path))
    return [str(f) for digest, f in _file_digests(Path(data)).items() if digest in trained]


def _check_unseen(dirs: dict[str, Path | None], data: Path | str | int | None) -> None:
    if not isinstance(data, (str, Path)):
        return
    for who, folder in dirs.items():
        seen = [] if folder is None else fitted_on_scored_rows(folder, Path(data))
        if seen:
            from pumpops.errors import ConfigError  # noqa: PLC0415

            raise ConfigError(
                f"the {who} was fitted on the rows validation would score in {len(seen)} file(s) of "
                f"{data} (e.g. {seen[0]}): compare champion and challenger on data neither was fitted on"
            )


def validate_candidate(
    registry: CandidateRegistry,
    candidate: Any,
    *,
    champion: Any | None,
    actor: str,
    config: ValidationConfig | None = None,
    data: Path | str | int | None = None,
    measuring: Callable[[], AbstractContextManager[Any]] | None = None,
    post_drift: PostDriftData | None = None,
) -> CandidateValidation:
    """Run the gates on a registered candidate (against ``champion``) and store the report on it.

    ``measuring`` wraps the measurement (e.g. a console status line). ``post_drift``
    (a drift-triggered retrain) adds the post-drift gate on the group's own data. A failed
    validation is a report with ``passed`` false, stored like a passed one.

    Raises:
        ConfigError: ``data`` is a folder holding files whose scored rows the
            candidate or the champion was fitted on (:func:`fitted_on_scored_rows`),
            or validation scored a pump either was fitted on (``_unseen.check_pumps_unseen``);
            nothing is stored then.
    """
    from pumpops import validation  # noqa: PLC0415 - through the package: a replaced validate_model is honoured

    with tempfile.TemporaryDirectory(prefix="pumpops-validate-") as tmp:
        candidate_dir = registry.download_model(candidate, Path(tmp) / "candidate")
        champion_dir = None if champion is None else registry.download_model(champion, Path(tmp) / "champion")
        _check_unseen({"candidate": candidate_dir, "champion": champion_dir}, data)
        with measuring() if measuring is not None else nullcontext():
            report = validation.validate_model(
                candidate_dir,
                champion_dir=champion_dir,
                config=config,
                data=data,
                subject=candidate.ref,
                **({} if post_drift is None else {"post_drift": post_drift}),
            )
        # fleet data: the pumps validation scored must be pumps neither model was fitted on
        check_pumps_unseen(
            {"candidate": candidate_dir, "champion": champion_dir}, scored_devices(report.context)
        )
    report_json = report.to_json()
    if isinstance(report_json, bytes):
        report_json = report_json.decode("utf-8")
    stored = registry.store_validation(
        candidate, passed=bool(report.passed), report_json=str(report_json), against=champion, actor=actor
    )
    return CandidateValidation(report, champion, stored)
