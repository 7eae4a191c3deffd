"""MLflow tracking of pipeline runs, and the lineage facts a run records (code revision, environment).

Any MLflow tracking URI works. It is a workspace setting (``tracking_uri`` in
``pumpops.toml``, ``$PUMPOPS_TRACKING_URI``, ``--tracking-uri``), the same for
training, the registry and validation; the embedded default is
``sqlite:///<workspace>/mlflow.db`` with artifacts in ``<workspace>/mlartifacts``.
A run's ``model/`` artifacts are the model folder plus MLflow's ``onnx``
flavor description (``MLmodel``), so ``mlflow.onnx.load_model("models:/...")``
and MLflow's model view work on every registered version.
MLflow is imported lazily and only after its usage telemetry is switched off
(``MLFLOW_DISABLE_TELEMETRY`` and ``DO_NOT_TRACK``, read at import time in
MLflow 3), so a run never calls out to the network on its own. Only the
tracking client is used (``MlflowClient``), never the global "active run"
state, so two pipelines in one process do not share a run by accident.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import math
import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pumpops.errors import ServiceError

if TYPE_CHECKING:
    from pumpops.settings import Settings

TRACKING_URI_ENV = "PUMPOPS_MLFLOW_URI"  # the legacy name; $PUMPOPS_TRACKING_URI is the setting's
_PARAM_MAX = 6000  # characters MLflow keeps of a parameter value
#: Files of MLflow's onnx flavor logged beside ``model.onnx`` in a run's ``model/`` artifacts.
FLAVOR_FILES = ("MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt")


def default_tracking_uri(workspace: Path) -> str:
    """The embedded default: a SQLite file in the workspace."""
    return f"sqlite:///{(workspace / 'mlflow.db').resolve()}"


def resolve_tracking_uri(where: Path | Settings, *, cli: str | None = None) -> str:
    """The tracking URI of a workspace: the command line's, else the workspace setting.

    The setting is ``tracking_uri`` in ``pumpops.toml`` or ``$PUMPOPS_TRACKING_URI``
    (then the legacy ``$PUMPOPS_MLFLOW_URI``), else ``sqlite:///<workspace>/mlflow.db``
    (:attr:`pumpops.settings.Settings.resolved_tracking_uri`). Training, the
    registry and validation all call this, so a run is registered where it was logged.

    Args:
        where: the workspace folder, or its loaded settings (with their command-line overrides).
        cli: a ``--tracking-uri`` given on the command line.
    """
    if cli:
        return cli
    if isinstance(where, Path | str):
        from pumpops.settings import load_settings  # noqa: PLC0415 - pydantic, only when needed

        return load_settings(Path(where)).resolved_tracking_uri
    return where.resolved_tracking_uri


@contextmanager
def mlflow_quiet() -> Iterator[None]:
    """Silence MLflow's own noise for the block: migration logs and its deprecation warnings.

    Creating the embedded database logs its migrations at INFO on stderr, and
    MLflow's SQLAlchemy store and alembic migrations warn about their own
    deprecated usage; neither is ours to fix, and pytest runs with
    ``filterwarnings = error``.
    """
    quiet = [logging.getLogger(name) for name in ("mlflow.store.db.utils", "alembic.runtime.migration")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", category=DeprecationWarning, module=r"(mlflow|alembic|sqlalchemy)"
            )
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow")
            yield
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def quiet_mlflow_env() -> None:
    """Keep MLflow from starting its usage-telemetry client; call before importing it."""
    # MLflow 3 starts a usage-telemetry client when it is imported unless one
    # of these is set; setdefault keeps an operator's explicit choice.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")


@dataclass(frozen=True, slots=True)
class CodeRevision:
    """The git commit of the code that ran, and whether its work tree had uncommitted changes."""

    commit: str
    dirty: bool | None

    def as_tags(self) -> dict[str, str]:
        """MLflow tags (``unknown`` outside a git tree)."""
        return {
            "pumpops.code_commit": self.commit,
            "pumpops.code_dirty": "unknown" if self.dirty is None else str(self.dirty).lower(),
            "mlflow.source.git.commit": self.commit,
        }


@cache
def code_revision(where: Path | None = None) -> CodeRevision:
    """Return the git commit and dirty flag of the tree holding ``where`` (default: this package).

    Outside a git work tree, or without git, the commit is ``unknown``.
    """
    folder = where or Path(__file__).resolve().parent
    git = shutil.which("git")
    if git is None:
        return CodeRevision("unknown", None)
    try:
        commit = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [git, "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [git, "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return CodeRevision("unknown", None)
    return CodeRevision(commit or "unknown", bool(status.strip()))


@cache
def package_set() -> tuple[str, ...]:
    """Sorted ``name==version`` of every installed distribution."""
    names = set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            names.add(f"{name.lower().replace('_', '-')}=={dist.version}")
    return tuple(sorted(names))


def package_set_hash() -> str:
    """SHA-256 of :func:`package_set`, one entry per line."""
    return hashlib.sha256("\n".join(package_set()).encode("utf-8")).hexdigest()


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k in sorted(value):
            _flatten(f"{prefix}.{k}" if prefix else str(k), value[k], out)
    else:
        text = str(list(value) if isinstance(value, tuple) else value)
        out[prefix] = text[:_PARAM_MAX]


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Nested mapping -> dotted keys with string values (as MLflow stores parameters).

    >>> flatten_params({"detector": {"kind": "pca", "hyper": {"variance": 0.9}}, "seed": 0})
    {'detector.hyper.variance': '0.9', 'detector.kind': 'pca', 'seed': '0'}
    """
    out: dict[str, str] = {}
    _flatten("", params, out)
    return out


def onnx_flavor_files(onnx_path: Path, dest: Path) -> list[Path]:
    """Write MLflow's ``onnx`` flavor description of a model file into ``dest``; return its files.

    The files (:data:`FLAVOR_FILES`: ``MLmodel`` with ``data: model.onnx``, and
    the pinned requirements) are logged beside the run's ``model/model.onnx``,
    which stays the pipeline's own bytes. The requirements are given, not
    inferred (MLflow's inference starts a Python process: seconds).

    Raises:
        ServiceError: MLflow could not describe the model.
    """
    quiet_mlflow_env()
    import onnx  # noqa: PLC0415 - heavy
    from mlflow.exceptions import MlflowException  # noqa: PLC0415 - heavy, and env first
    from mlflow.onnx import save_model  # noqa: PLC0415

    pins = [f"{name}=={importlib.metadata.version(name)}" for name in ("onnx", "onnxruntime")]
    folder = dest / "mlflow-onnx-flavor"
    try:
        with mlflow_quiet(), warnings.catch_warnings():
            # MLflow's notes on type hints of its python_function flavor: not ours to act on
            warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow")
            save_model(
                onnx.load_model(str(onnx_path)),
                str(folder),
                pip_requirements=pins,
                onnx_execution_providers=["CPUExecutionProvider"],
                save_as_external_data=False,
            )
    except (MlflowException, OSError) as exc:
        raise ServiceError(f"MLflow could not describe {onnx_path} as an onnx model: {exc}") from exc
    return [folder / name for name in FLAVOR_FILES if (folder / name).is_file()]


def log_run(
    *,
    tracking_uri: str,
    workspace: Path,
    experiment: str,
    run_name: str | None,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    artifacts: Sequence[tuple[str, Path]],
) -> tuple[str, str]:
    """Log one finished run: parameters, metrics, tags and artifact files.

    A new experiment in a local backend keeps its runs' artifacts in
    ``<workspace>/mlartifacts/<run id>/artifacts``.

    Args:
        tracking_uri: any MLflow tracking URI.
        workspace: the workspace (for the local artifact folder).
        experiment: experiment name (created if missing).
        run_name: the run's display name.
        params: parameters (nested mappings are flattened to dotted keys).
        metrics: numbers; NaN and infinite values are left out.
        tags: string tags.
        artifacts: ``(artifact sub-folder, local file)`` pairs to upload.

    Returns:
        ``(run_id, artifact_uri)``.

    Raises:
        ServiceError: the tracking server or database failed.
    """
    quiet_mlflow_env()
    try:
        from mlflow.entities import Metric, Param, RunTag  # noqa: PLC0415 - heavy, and env first
        from mlflow.exceptions import MlflowException  # noqa: PLC0415
        from mlflow.tracking import MlflowClient  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - mlflow is a dependency
        raise ServiceError(f"MLflow is not installed: {exc}") from exc
    try:
        with mlflow_quiet():
            client = MlflowClient(tracking_uri=tracking_uri)
            found = client.get_experiment_by_name(experiment)
            if found is None:
                location = None
                if tracking_uri.startswith(("sqlite:", "file:", "/")) or "://" not in tracking_uri:
                    location = (workspace / "mlartifacts").resolve().as_uri()
                experiment_id = client.create_experiment(experiment, artifact_location=location)
            else:
                experiment_id = found.experiment_id
            run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
            run_id = run.info.run_id
            flat = flatten_params(params)
            items = sorted(flat.items())
            for i in range(0, len(items), 100):
                client.log_batch(run_id, params=[Param(k, v) for k, v in items[i : i + 100]])
            now = int(run.info.start_time)
            good = sorted((k, float(v)) for k, v in metrics.items() if math.isfinite(float(v)))
            for i in range(0, len(good), 500):
                client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in good[i : i + 500]])
            client.log_batch(run_id, tags=[RunTag("pumpops.params_count", str(len(flat)))])
            for folder, path in artifacts:
                client.log_artifact(run_id, str(path), artifact_path=folder or None)
            client.set_terminated(run_id, "FINISHED")
            artifact_uri = client.get_run(run_id).info.artifact_uri
    except MlflowException as exc:
        raise ServiceError(f"MLflow tracking at {tracking_uri} failed: {exc}") from exc
    return run_id, str(artifact_uri)
