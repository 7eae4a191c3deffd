"""The registry: MLflow model versions with pumpops lineage tags, aliases per device group, alias history.

MLflow's Model Registry is the system of record for versions, their tags and
the *current* alias; the pumpops store keeps what MLflow does not (every alias
period, :meth:`TelemetryStore.set_alias`) and the audit trail. Every change
writes MLflow first, then the alias history, the audit entry and the event,
so a failed MLflow call leaves no trace claiming it happened.

Tags on a model version (all strings):

- ``pumpops.run_id``, ``pumpops.dataset_digest``, ``pumpops.config_hash``,
  ``pumpops.code_commit``, ``pumpops.code_dirty``, ``pumpops.package_set_sha256``,
  ``pumpops.seed``, ``pumpops.group``, ``pumpops.detector_kind``,
  ``pumpops.model_sha256``, ``pumpops.metric.<name>`` (finite metrics only);
- ``pumpops.parent``: the group's champion (``name/version``) when this
  version was registered, or ``none``;
- ``pumpops.validation``: ``passed`` or ``failed``, with
  ``pumpops.validation_sha256`` (SHA-256 of the report JSON, stored as the
  artifact ``validation-report.json`` of the version's run),
  ``pumpops.validation_against`` (the champion it was compared with);
- ``pumpops.archived``: ``true`` once archived.

References and names are in ``_refs.py``, :class:`ModelVersionInfo` in
``_info.py``, the MLflow error boundary in ``_mlflow.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pumpops.errors import ConfigError, InputError, NotFoundError
from pumpops.registry._info import _LINEAGE_TAGS, FAILED, PASSED, VALIDATION_ARTIFACT, ModelVersionInfo
from pumpops.registry._mlflow import _mlflow_calls, _mlflow_error, _quiet_mlflow_env
from pumpops.registry._refs import alias_name, default_model_name, parse_model_ref, parse_ref

if TYPE_CHECKING:  # the store loads SQLAlchemy and numpy: not needed to parse a reference
    from pumpops.registry._events import EventSink
    from pumpops.store import AliasRecord

__all__ = [
    "ModelVersionInfo",
    "Registry",
    "alias_name",
    "default_model_name",
    "parse_model_ref",
    "parse_ref",
]

_log = logging.getLogger(__name__)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise InputError(f"{path} is not a JSON object")
    return value


class Registry:
    """Model versions, aliases and their history, for one MLflow tracking URI and one pumpops store.

    Args:
        tracking_uri: any MLflow tracking URI (the registry lives with it).
        events: the event sink; its store also keeps the alias history and the audit trail.
    """

    def __init__(self, tracking_uri: str, events: EventSink) -> None:
        _quiet_mlflow_env()
        from mlflow.tracking import MlflowClient  # noqa: PLC0415 - heavy, and env first

        self.tracking_uri = tracking_uri
        self._events = events
        self._store = events.store
        with _mlflow_calls(f"MLflow at {tracking_uri}"):
            self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # -- reading ------------------------------------------------------------------------------

    def _info(self, mv: Any) -> ModelVersionInfo:
        return ModelVersionInfo(
            name=mv.name,
            version=int(mv.version),
            run_id=mv.run_id or "",
            source=mv.source or "",
            tags=dict(mv.tags or {}),
            aliases=tuple(sorted(mv.aliases or ())),
            created_ms=int(mv.creation_timestamp or 0),
        )

    def get(self, name: str, version: int) -> ModelVersionInfo:
        """Return one model version.

        Raises:
            NotFoundError: no such model or version.
            ServiceError: MLflow failed.
        """
        with _mlflow_calls(f"model version {name}/{version}"):
            return self._info(self._client.get_model_version(name, str(version)))

    def resolve(self, ref: str) -> ModelVersionInfo:
        """The version a reference names: ``<name>/<version>`` or ``<name>@<alias>``.

        For ``<name>@champion`` and ``<name>@challenger`` the group's alias
        (``<group>-champion``) is looked up when no alias of that exact name exists.

        Raises:
            ConfigError: neither shape.
            NotFoundError: no such model, version or alias.
            ServiceError: MLflow failed.
        """
        name, which = parse_model_ref(ref)
        if isinstance(which, int):
            return self.get(name, which)
        found = self.by_alias(name, which)
        if found is None and which in ("champion", "challenger"):
            with _mlflow_calls(f"registered model {name}"):
                group = (self._client.get_registered_model(name).tags or {}).get("pumpops.group", "")
            if group:
                found = self.by_alias(name, alias_name(group, which))
        if found is None:
            raise NotFoundError(f"model {name} has no version with the alias {which!r}")
        return found

    def releases_of(self, info: ModelVersionInfo) -> list[dict[str, Any]]:
        """The releases packaged from one model version, oldest first (from the pumpops store)."""
        return [
            {
                "release": r.release_id,
                "targets": list(r.targets),
                "created_by": r.created_by,
                "created": datetime.fromtimestamp(r.created_us / 1e6, tz=UTC).isoformat(timespec="seconds"),
            }
            for r in self._store.releases(group=info.group or None)
            if r.model_name == info.name and r.version == info.version
        ]

    def by_alias(self, name: str, alias: str) -> ModelVersionInfo | None:
        """Return the version an alias of a registered model points at, or None."""
        try:
            with _mlflow_calls(f"alias {alias} of {name}"):
                return self._info(self._client.get_model_version_by_alias(name, alias))
        except (NotFoundError, InputError):
            return None

    def champion(self, group: str) -> ModelVersionInfo | None:
        """The group's current champion (the open period of ``<group>-champion`` in the history)."""
        current = self._current(group, alias_name(group, "champion"))
        return None if current is None else self.get(current.model_name, current.version)

    def _current(self, group: str, alias: str) -> AliasRecord | None:
        periods = [p for p in self._store.alias_history(group=group, alias=alias) if p.to_us is None]
        return periods[-1] if periods else None

    def list_versions(self, *, group: str | None = None) -> list[ModelVersionInfo]:
        """Every model version (optionally of one device group), by name then version."""
        with _mlflow_calls("list model versions"):
            versions = self._client.search_model_versions(max_results=10_000)
            # search results carry no aliases; the registered models do
            aliases: dict[tuple[str, str], list[str]] = {}
            for model in self._client.search_registered_models(max_results=1000):
                for alias, number in (model.aliases or {}).items():
                    aliases.setdefault((model.name, str(number)), []).append(alias)
        found = []
        for mv in versions:
            info = self._info(mv)
            found.append(
                replace(info, aliases=tuple(sorted(aliases.get((info.name, str(info.version)), []))))
            )
        if group is not None:
            found = [v for v in found if v.group == group]
        return sorted(found, key=lambda v: (v.name, v.version))

    def history(self, group: str) -> list[AliasRecord]:
        """Every alias period of a group, oldest first."""
        return self._store.alias_history(group=group)

    # -- registering --------------------------------------------------------------------------

    def latest_run_id(self) -> str:
        """The newest finished pipeline run (one that exported a model).

        Raises:
            NotFoundError: there is none.
        """
        with _mlflow_calls("find the latest run"):
            experiments = self._client.search_experiments()
            runs = self._client.search_runs(
                [e.experiment_id for e in experiments],
                filter_string="attributes.status = 'FINISHED'",
                order_by=["attributes.start_time DESC"],
                max_results=50,
            )
        for run in runs:
            if "pumpops.model_sha256" in run.data.tags:
                return str(run.info.run_id)
        raise NotFoundError(f"no finished pipeline run in MLflow at {self.tracking_uri}; run `pumpops train`")

    def _run_for_model(self, model_sha256: str) -> str:
        with _mlflow_calls("find the run of a model folder"):
            experiments = self._client.search_experiments()
            runs = self._client.search_runs(
                [e.experiment_id for e in experiments],
                filter_string=f"tags.`pumpops.model_sha256` = '{model_sha256}'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
        if not runs:
            raise NotFoundError(f"no MLflow run logged the model {model_sha256[:12]}; give --run-id")
        return str(runs[0].info.run_id)

    def register(
        self,
        run_result: Any = None,
        *,
        model_dir: Path | None = None,
        run_id: str | None = None,
        name: str | None = None,
        actor: str,
    ) -> ModelVersionInfo:
        """Register a pipeline run's model folder (``model/`` of the run) as a model version.

        Registering the same run again returns the version already registered
        (unless it was archived: then it becomes a new version); so does a run
        whose model is identical to a version's (the same ONNX
        digest, config hash and dataset digest, not archived): training the same
        pipeline on the same data does not make a new version of the same bytes.
        Either way the returned info has ``reused`` set and nothing is recorded.

        Args:
            run_result: a :class:`~pumpops.pipeline.RunResult` (gives the folder and the run).
            model_dir: the model folder, when no ``run_result`` is given.
            run_id: the run; default: the run's, or the run that logged the folder's model.
            name: the registered model; default ``pumpops-<group>``.
            actor: who registers it (audit trail).

        Returns:
            The version, with its lineage tags.

        Raises:
            ConfigError: neither a run result nor a model folder, or the run was not logged.
            InputError: the folder lacks ``lineage.json``/``metrics.json``.
            NotFoundError: the run does not exist.
            ServiceError: MLflow or the store failed.
        """
        if run_result is not None:
            model_dir = Path(run_result.model_dir)
            run_id = run_id or run_result.run_id
            if run_id is None:
                raise ConfigError("the pipeline run was not logged to MLflow (output.log = false)")
        if model_dir is None:
            raise ConfigError("give a pipeline run result or a model folder")
        lineage = _read_json(Path(model_dir) / "lineage.json")
        metrics = _read_json(Path(model_dir) / "metrics.json")
        run_id = run_id or self._run_for_model(str(lineage.get("model_sha256", "")))
        group = str(lineage.get("group", ""))
        if not group:
            raise InputError(f"{model_dir}/lineage.json names no device group")
        name = name or default_model_name(group)
        with _mlflow_calls(f"register run {run_id}"):
            run = self._client.get_run(run_id)
            for mv in self._client.search_model_versions(f"run_id = '{run_id}'"):
                same_run = self._info(mv)
                if mv.name == name and not same_run.archived:  # an archived one: register it anew
                    return replace(same_run, reused=True)
            tags = self._lineage_tags(run.data.tags, lineage, metrics)
            same = self._identical(name, tags)
            if same is not None:
                return replace(same, reused=True)
            tags["pumpops.run_id"] = run_id
            champion = self.champion(group)
            tags["pumpops.parent"] = champion.ref if champion else "none"
            try:
                self._client.get_registered_model(name)
            except _mlflow_error():  # MLflow says "does not exist" with an exception: create it
                self._client.create_registered_model(
                    name, tags={"pumpops.group": group}, description=f"pumpops models of device group {group}"
                )
            mv = self._client.create_model_version(
                name, source=f"{run.info.artifact_uri}/model", run_id=run_id, tags=tags
            )
            info = self._info(mv)
        payload = {
            "model": info.ref,
            "run_id": run_id,
            "group": group,
            "parent": tags["pumpops.parent"],
            **{k: tags[v] for k, v in _LINEAGE_TAGS.items() if v in tags},
        }
        self._store.append_audit(actor, "model.registered", info.ref, payload)
        self._events.emit("model.registered", info.ref, payload)
        return info

    def _identical(self, name: str, tags: Mapping[str, str]) -> ModelVersionInfo | None:
        """The newest version of ``name`` with the same model digest and lineage, not archived."""
        keys = ("pumpops.model_sha256", "pumpops.config_hash", "pumpops.dataset_digest")
        if not all(tags.get(k) for k in keys):
            return None
        escaped = name.replace("'", "''")
        candidates = [
            self._info(mv)
            for mv in self._client.search_model_versions(f"name = '{escaped}'", max_results=10_000)
        ]
        same = [v for v in candidates if all(v.tags.get(k) == tags[k] for k in keys) and not v.archived]
        if not same:
            return None
        newest = max(same, key=lambda v: v.version)
        return self.get(newest.name, newest.version)  # with its aliases

    @staticmethod
    def _lineage_tags(
        run_tags: Mapping[str, str], lineage: Mapping[str, Any], metrics: Mapping[str, Any]
    ) -> dict[str, str]:
        tags: dict[str, str] = {}
        for key in ("dataset_digest", "config_hash", "package_set_sha256", "seed", "group", "model_sha256"):
            value = run_tags.get(f"pumpops.{key}", lineage.get(key))
            if value is not None:
                tags[f"pumpops.{key}"] = str(value)
        tags["pumpops.code_commit"] = str(
            run_tags.get("pumpops.code_commit", lineage.get("code_commit", "unknown"))
        )
        dirty = lineage.get("code_dirty")
        tags["pumpops.code_dirty"] = run_tags.get(
            "pumpops.code_dirty", "unknown" if dirty is None else str(dirty).lower()
        )
        tags["pumpops.detector_kind"] = str(lineage.get("detector_kind", "unknown"))
        for key, value in sorted(metrics.items()):
            if isinstance(value, int | float) and math.isfinite(float(value)):
                tags[f"pumpops.metric.{key}"] = repr(float(value))
        return tags

    # -- aliases ------------------------------------------------------------------------------

    def _move_alias(
        self, info: ModelVersionInfo, group: str, role: str, *, actor: str, reason: str | None
    ) -> AliasRecord | None:
        """Point ``<group>-<role>`` at ``info`` in MLflow and in the history; return the previous period."""
        alias = alias_name(group, role)
        previous = self._current(group, alias)
        with _mlflow_calls(f"set alias {alias} on {info.ref}"):
            if previous is not None and previous.model_name != info.name:
                try:
                    self._client.delete_registered_model_alias(previous.model_name, alias)
                except _mlflow_error():  # already gone in MLflow: the history still closes it
                    _log.info("alias %s was no longer on %s in MLflow", alias, previous.model_name)
            self._client.set_registered_model_alias(info.name, alias, str(info.version))
        self._store.set_alias(group, alias, info.name, info.version, set_by=actor, reason=reason)
        return previous

    def _drop_alias(self, info: ModelVersionInfo, group: str, role: str) -> AliasRecord | None:
        alias = alias_name(group, role)
        current = self._current(group, alias)
        if current is None or (current.model_name, current.version) != (info.name, info.version):
            return None
        with _mlflow_calls(f"remove alias {alias} from {info.ref}"):
            try:
                self._client.delete_registered_model_alias(info.name, alias)
            except _mlflow_error():  # already gone in MLflow: the history still closes it
                _log.info("alias %s was no longer on %s in MLflow", alias, info.ref)
        return self._store.end_alias(group, alias)

    def promote(
        self,
        name: str,
        version: int,
        group: str,
        *,
        actor: str,
        force: bool = False,
        reason: str | None = None,
    ) -> ModelVersionInfo:
        """Make a version its group's champion (``<group>-champion``).

        Only a version whose stored validation report passed may be promoted,
        for the group it was trained for; ``force`` overrides both checks and
        needs a reason, which the alias history, the audit entry and the event
        carry.

        Raises:
            ConfigError: refused (not validated, failed, archived, another
                group, already champion) or ``force`` without a reason.
            NotFoundError: no such version.
            ServiceError: MLflow or the store failed.
        """
        if force and not (reason or "").strip():
            raise ConfigError("--force needs a --reason (it is written to the audit trail)")
        info = self.get(name, version)
        if info.archived:
            raise ConfigError(f"{info.ref} is archived; register the run again to use it")
        problems = []
        if info.validation != PASSED or not info.tags.get("pumpops.validation_sha256"):
            problems.append(
                f"{info.ref} has no passed validation report (validation: {info.validation}); "
                f"run `pumpops validate {info.ref}`"
            )
        if info.group and info.group != group:
            problems.append(f"{info.ref} was trained for group {info.group!r}, not {group!r}")
        if problems and not force:
            raise ConfigError("promotion refused: " + "; ".join(problems) + " (or --force --reason ...)")
        champion = self._current(group, alias_name(group, "champion"))
        if champion is not None and (champion.model_name, champion.version) == (name, version):
            raise ConfigError(f"{info.ref} is already the champion of {group}")
        previous = self._move_alias(info, group, "champion", actor=actor, reason=reason)
        self._drop_alias(info, group, "challenger")
        payload: dict[str, Any] = {
            "model": info.ref,
            "group": group,
            "alias": alias_name(group, "champion"),
            "previous": None if previous is None else f"{previous.model_name}/{previous.version}",
            "validation": info.validation,
            "validation_sha256": info.tags.get("pumpops.validation_sha256"),
            "forced": bool(force),
            "reason": reason,
        }
        if force:
            payload["overridden"] = problems
        self._store.append_audit(actor, "model.promoted", info.ref, payload)
        self._events.emit("model.promoted", info.ref, payload)
        return self.get(name, version)

    def archive(self, name: str, version: int, *, actor: str, reason: str | None = None) -> ModelVersionInfo:
        """Archive a version: tag it, remove its aliases (closing their history periods).

        An archived version can no longer be promoted. Archiving the champion
        leaves its group without one (the fleet keeps what it runs).

        Raises:
            ConfigError: it is already archived.
            NotFoundError: no such version.
            ServiceError: MLflow or the store failed.
        """
        info = self.get(name, version)
        if info.archived:
            raise ConfigError(f"{info.ref} is already archived")
        removed = []
        if info.group:
            for role in ("champion", "challenger"):
                if self._drop_alias(info, info.group, role) is not None:
                    removed.append(alias_name(info.group, role))
        with _mlflow_calls(f"archive {info.ref}"):
            for alias in info.aliases:  # any alias set outside pumpops
                if alias not in removed:
                    self._client.delete_registered_model_alias(name, alias)
                    removed.append(alias)
            self._client.set_model_version_tag(name, str(version), "pumpops.archived", "true")
        payload = {
            "model": info.ref,
            "group": info.group,
            "aliases_removed": sorted(removed),
            "reason": reason,
        }
        self._store.append_audit(actor, "model.archived", info.ref, payload)
        self._events.emit("model.archived", info.ref, payload)
        return self.get(name, version)

    # -- validation ---------------------------------------------------------------------------

    def download_model(self, info: ModelVersionInfo, dest: Path) -> Path:
        """Copy a version's model folder into ``dest``; return the folder (holding ``model.onnx``)."""
        return self.download_run_model(info.run_id, dest)

    def download_run_model(self, run_id: str, dest: Path) -> Path:
        """Copy a run's ``model/`` artifacts into ``dest``; return the folder.

        Raises:
            NotFoundError: no such run.
            ServiceError: MLflow or its artifact store failed.
        """
        dest.mkdir(parents=True, exist_ok=True)
        # a progress bar per download fills a console or a log (validation fetches every model)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with _mlflow_calls(f"download the model folder of run {run_id}"):
            path = self._client.download_artifacts(run_id, "model", str(dest))
        return Path(path)

    def store_validation(
        self,
        info: ModelVersionInfo,
        *,
        passed: bool,
        report_json: str,
        against: ModelVersionInfo | None,
        actor: str,
    ) -> ModelVersionInfo:
        """Keep a validation report with a version; a pass makes it its group's challenger.

        The report JSON becomes the artifact ``validation-report.json`` of the
        version's run; the tags ``pumpops.validation`` (``passed``/``failed``),
        ``pumpops.validation_sha256`` and ``pumpops.validation_against`` say
        what it concluded. Emits ``model.validated`` and audits it.

        Raises:
            ServiceError: MLflow or the store failed.
        """
        digest = hashlib.sha256(report_json.encode("utf-8")).hexdigest()
        status = PASSED if passed else FAILED
        with _mlflow_calls(f"store the validation report of {info.ref}"):
            self._client.log_text(info.run_id, report_json, VALIDATION_ARTIFACT)
            for key, value in (
                ("pumpops.validation_sha256", digest),
                ("pumpops.validation_against", against.ref if against else "none"),
                ("pumpops.validation", status),
            ):
                self._client.set_model_version_tag(info.name, str(info.version), key, value)
        challenger = None
        if passed and info.group and not info.archived:
            self._move_alias(info, info.group, "challenger", actor=actor, reason="validation passed")
            challenger = alias_name(info.group, "challenger")
        payload = {
            "model": info.ref,
            "group": info.group,
            "status": status,
            "report_sha256": digest,
            "report_artifact": VALIDATION_ARTIFACT,
            "against": against.ref if against else None,
            "alias_set": challenger,
        }
        self._store.append_audit(actor, "model.validated", info.ref, payload)
        self._events.emit("model.validated", info.ref, payload)
        return self.get(info.name, info.version)
