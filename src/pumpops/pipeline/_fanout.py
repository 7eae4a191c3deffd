"""Training many groups at once: each group's pipeline run is one task on a Dask cluster.

:func:`train_groups` runs :func:`~pumpops.pipeline._run.run_pipeline` once per
named config, either in this process one after the other (``"sequential"``,
the baseline), on a local cluster of worker *processes* that lives as long as
the call (``"local"``, the default: no service to run), or on a running
``distributed`` scheduler (``"tcp://host:8786"``: many machines sharing the
workspace folder, the store and the tracking server). Every worker runs the
same function with the same arguments as the sequential path, so the step
cache, the model folders and the MLflow run of a group are exactly what
``pumpops train`` gives (same ONNX bytes, same metrics).

Each group's run is logged to MLflow by the worker that trained it (as
``run_pipeline`` does), so the parent never holds a model's files. The parent
creates the tracking database and the experiments before any task starts
(two workers creating one experiment at once would collide), and afterwards
checks that every trained group has its one run: a run that a worker logged
before dying, whose task Dask then ran again elsewhere, is found by its group,
config hash and dataset digest and deleted (:func:`drop_orphan_runs`).

A failing group is an outcome with its error, never an exception that loses
the others' results (:class:`GroupOutcome`). Registering the models is left to
the caller, in the parent, one at a time (the registry's version numbers are
assigned there).
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pumpops.errors import ConfigError, ServiceError
from pumpops.pipeline._config import PipelineConfig
from pumpops.pipeline._run import RunResult, run_pipeline
from pumpops.pipeline._tracking import mlflow_quiet, quiet_mlflow_env, resolve_tracking_uri

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["FanoutReport", "GroupOutcome", "check_scheduler", "drop_orphan_runs", "train_groups"]

SEQUENTIAL = "sequential"
LOCAL = "local"
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx)://[^\s/]+(:\d{1,5})?/?$")
_LOG = logging.getLogger(__name__)


def check_scheduler(scheduler: str) -> str:
    """Return ``scheduler`` if it names a way to run tasks, else raise.

    >>> check_scheduler("local"), check_scheduler("tcp://10.0.0.5:8786")
    ('local', 'tcp://10.0.0.5:8786')
    >>> check_scheduler("dask")
    Traceback (most recent call last):
    pumpops.errors.ConfigError: scheduler 'dask': use 'local', 'sequential' or a scheduler address such as tcp://host:8786

    Raises:
        ConfigError: not ``local``, ``sequential`` or a ``distributed`` address.
    """
    if scheduler in (LOCAL, SEQUENTIAL) or _ADDRESS.match(scheduler):
        return scheduler
    raise ConfigError(
        f"scheduler {scheduler!r}: use 'local', 'sequential' or a scheduler address such as tcp://host:8786"
    )


@dataclass
class GroupOutcome:
    """One group's training in a fan-out.

    Attributes:
        name: the name the config was given (usually the device group).
        result: the pipeline run's result, or None when it failed.
        error: ``"<ErrorType>: <message>"`` when it failed, else None.
        error_type: the exception's class name (``ConfigError``, ``InputError``,
            ``KilledWorker`` ...), else None.
        worker: where it ran: a worker's address, or ``"parent"``.
        elapsed_s: seconds from the task's start to its end, on the worker.
        cpu_s: CPU seconds the task's process spent on it (all its threads), on the worker.
    """

    name: str
    result: RunResult | None
    error: str | None = None
    error_type: str | None = None
    worker: str = "parent"
    elapsed_s: float = 0.0
    cpu_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the group was trained."""
        return self.result is not None


@dataclass
class FanoutReport:
    """What :func:`train_groups` did.

    Attributes:
        outcomes: one per config, in the order the configs were given.
        scheduler: ``sequential``, ``local`` or the scheduler's address.
        workers: workers that ran tasks (1 for sequential).
        wall_s: seconds from the first task submitted to the last result (cluster start excluded).
        startup_s: seconds to start (or connect to) the cluster and prepare tracking.
        orphan_runs: MLflow runs deleted as duplicates of a group's run (see :func:`drop_orphan_runs`).
    """

    outcomes: list[GroupOutcome]
    scheduler: str
    workers: int
    wall_s: float
    startup_s: float = 0.0
    orphan_runs: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[GroupOutcome]:
        """The groups that were not trained."""
        return [o for o in self.outcomes if not o.ok]

    def result(self, name: str) -> RunResult:
        """The result of group ``name``.

        Raises:
            KeyError: no such group, or it failed (the message has its error).
        """
        for outcome in self.outcomes:
            if outcome.name == name:
                if outcome.result is None:
                    raise KeyError(f"{name}: {outcome.error}")
                return outcome.result
        raise KeyError(name)


@dataclass(frozen=True)
class _RunArgs:
    """What every group's run shares (sent with each task)."""

    workspace: str
    database_url: str
    tracking_uri: str
    use_cache: bool
    log: bool | None


def _train_task(name: str, config: PipelineConfig, run: _RunArgs) -> GroupOutcome:
    """One group's run, on whichever process executes it (a worker, or the parent).

    Errors come back as the outcome's text (an exception object need not pickle);
    only a lost worker or an unpicklable result fails the task itself.
    """
    start, cpu = time.perf_counter(), time.process_time()
    try:
        from distributed import get_worker  # noqa: PLC0415 - only where dask is the runner

        where = str(get_worker().address)
    except (ImportError, ValueError):  # not inside a worker
        where = "parent"
    try:
        result = run_pipeline(
            config,
            workspace=Path(run.workspace),
            database_url=run.database_url,
            use_cache=run.use_cache,
            tracking_uri=run.tracking_uri,
            log=run.log,
        )
    except Exception as exc:  # reported per group, the others go on
        return _failure(name, exc, where, time.perf_counter() - start)
    return GroupOutcome(
        name,
        result,
        worker=where,
        elapsed_s=round(time.perf_counter() - start, 6),
        cpu_s=round(time.process_time() - cpu, 6),
    )


def _logged(config: PipelineConfig, log: bool | None) -> bool:
    return config.output.log if log is None else log


def _prepare_tracking(tracking_uri: str, workspace: Path, experiments: set[str]) -> None:
    """Create the tracking database and every experiment once, before workers log into them.

    The artifact location of a new experiment follows ``log_run``'s rule (a local
    backend keeps artifacts in ``<workspace>/mlartifacts``), so a group's run lands
    where it would have landed when trained alone.
    """
    if not experiments:
        return
    quiet_mlflow_env()
    from mlflow.exceptions import MlflowException  # noqa: PLC0415 - heavy
    from mlflow.tracking import MlflowClient  # noqa: PLC0415

    local = tracking_uri.startswith(("sqlite:", "file:", "/")) or "://" not in tracking_uri
    try:
        with mlflow_quiet():
            client = MlflowClient(tracking_uri=tracking_uri)
            for name in sorted(experiments):
                if client.get_experiment_by_name(name) is None:
                    location = (workspace / "mlartifacts").resolve().as_uri() if local else None
                    client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:
        raise ServiceError(f"MLflow tracking at {tracking_uri}: {exc}") from exc


def drop_orphan_runs(
    outcomes: list[GroupOutcome], configs: Mapping[str, PipelineConfig], tracking_uri: str, since_ms: int
) -> list[str]:
    """Delete runs that duplicate a trained group's run; return their ids.

    A worker that dies after logging its run but before its result reaches the
    parent leaves a run behind, and Dask runs the task again on another worker,
    which logs a second one. The run that counts is the one in the returned
    result; any other run of the same experiment started since ``since_ms`` with
    the same group, config hash and dataset digest is such a leftover.

    Args:
        outcomes: the fan-out's outcomes.
        configs: the configs by name (for each run's experiment).
        tracking_uri: where the runs were logged.
        since_ms: the fan-out's start (epoch milliseconds): older runs are never touched.

    Returns:
        The deleted run ids (MLflow deletes softly: ``mlflow gc`` purges them).
    """
    logged = [(o, o.result) for o in outcomes if o.result is not None and o.result.run_id is not None]
    if not logged:
        return []
    quiet_mlflow_env()
    from mlflow.tracking import MlflowClient  # noqa: PLC0415 - heavy

    dropped: list[str] = []
    with mlflow_quiet():
        client = MlflowClient(tracking_uri=tracking_uri)
        for outcome, result in logged:
            experiment = client.get_experiment_by_name(configs[outcome.name].output.experiment)
            if experiment is None:
                continue
            query = (
                f"attributes.start_time >= {since_ms} "
                f"and tags.`pumpops.config_hash` = '{result.config_hash}' "
                f"and tags.`pumpops.dataset_digest` = '{result.dataset_digest}'"
            )
            for run in client.search_runs([experiment.experiment_id], filter_string=query):
                if run.info.run_id != result.run_id:
                    client.delete_run(run.info.run_id)
                    dropped.append(run.info.run_id)
    return dropped


def _local_client(workers: int, threads_per_worker: int) -> Client:
    import dask.config  # noqa: PLC0415 - hub-only, loaded when used
    from distributed import Client, LocalCluster  # noqa: PLC0415 - hub-only, loaded when used

    # The workers' statistical profiler samples every thread 100 times a second: CPU taken from
    # the training on a small machine, for a dashboard that is off anyway.
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,  # the steps hold the GIL (numpy, scikit-learn, onnx export): one process each
            dashboard_address=None,  # no dashboard: nothing to secure
            # the scheduler's small HTTP server (health, metrics) on a free local port, never the
            # dashboard's :8787 on every interface (taken when two runs overlap)
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.WARNING,
        )
    return Client(cluster)  # type: ignore[no-untyped-call]


def _warm_up(tracking_uri: str) -> None:
    """Do once per worker what every process does once before its first run.

    The imports (scikit-learn, skl2onnx, MLflow), MLflow's connection and schema
    check of the tracking database, and the lineage facts cached per process
    (code version, package set, code revision): start-up, not a group's time.
    """
    quiet_mlflow_env()
    import mlflow.onnx  # noqa: F401, PLC0415 - the onnx flavor written beside every logged model
    import skl2onnx  # noqa: F401, PLC0415
    import sklearn.decomposition  # noqa: F401, PLC0415
    from mlflow.tracking import MlflowClient  # noqa: PLC0415

    import pumpops.store  # noqa: F401, PLC0415 - SQLAlchemy and the store's tables
    from pumpops.pipeline._cache import code_version  # noqa: PLC0415 - per-process caches
    from pumpops.pipeline._tracking import code_revision, package_set_hash  # noqa: PLC0415

    with mlflow_quiet():
        MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
    code_version()
    package_set_hash()
    code_revision()


def train_groups(
    configs: Mapping[str, PipelineConfig],
    *,
    workspace: Path,
    database_url: str = "",
    tracking_uri: str | None = None,
    use_cache: bool = True,
    log: bool | None = None,
    scheduler: str | Client = LOCAL,
    workers: int = 0,
    threads_per_worker: int = 1,
    progress: Callable[[GroupOutcome], None] | None = None,
) -> FanoutReport:
    """Train one model per config, as tasks on Dask (or one after the other), and report each.

    Args:
        configs: validated pipeline configs by name (e.g. by device group); the
            names are how the outcomes are reported.
        workspace: the workspace (snapshots, cache, models, default tracking DB);
            on a remote cluster, a folder every worker sees at the same path.
        database_url: the store URL of ``store`` data sources (a remote cluster
            needs a server database, not a SQLite file).
        tracking_uri: where to log (default: the workspace's setting).
        use_cache: False recomputes every step.
        log: overrides each config's ``output.log``.
        scheduler: ``"local"`` (a cluster of ``workers`` processes for this
            call), ``"sequential"`` (in this process, no Dask), a scheduler
            address (``tcp://host:8786``), or a ``distributed.Client`` to use as it is.
        workers: local cluster size; 0 = one per CPU core.
        threads_per_worker: tasks each local worker runs at once.
        progress: told each group's outcome as it arrives (in completion order).

    Returns:
        The report, one outcome per config in the order given.

    Raises:
        ConfigError: a bad scheduler or worker count.
        ServiceError: the scheduler or the tracking server cannot be reached.
    """
    if isinstance(scheduler, str):
        check_scheduler(scheduler)
    if workers < 0 or threads_per_worker < 1:
        raise ConfigError(f"workers {workers} / threads_per_worker {threads_per_worker}: need >= 0 and >= 1")
    workspace = Path(workspace).resolve()
    uri = tracking_uri or resolve_tracking_uri(workspace)
    names = list(configs)
    started = time.perf_counter()
    since_ms = int(time.time() * 1000) - 1
    _prepare_tracking(uri, workspace, {c.output.experiment for c in configs.values() if _logged(c, log)})
    args = _RunArgs(str(workspace), database_url, uri, use_cache, log)
    outcomes: dict[str, GroupOutcome] = {}

    def record(outcome: GroupOutcome) -> None:
        outcomes[outcome.name] = outcome
        if progress is not None:
            progress(outcome)

    if scheduler == SEQUENTIAL:
        _warm_up(uri)  # what each worker does at start, for a like-for-like comparison
        startup = time.perf_counter() - started
        t0 = time.perf_counter()
        for name in names:
            record(_train_task(name, configs[name], args))
        wall = time.perf_counter() - t0
        n_workers = 1
    else:
        client, own = _client(scheduler, workers, threads_per_worker)
        try:
            client.run(_warm_up, uri)  # on every worker, counted as start-up
            n_workers = len(client.scheduler_info()["workers"])
            startup = time.perf_counter() - started
            t0 = time.perf_counter()
            wall = _run_on(client, names, configs, args, record)
        finally:
            if own:
                cluster = client.cluster
                client.close()  # type: ignore[no-untyped-call]
                if cluster is not None:
                    cluster.close()
    report = FanoutReport(
        outcomes=[outcomes[n] for n in names],
        scheduler=scheduler if isinstance(scheduler, str) else str(scheduler.scheduler_info().get("address")),
        workers=n_workers,
        wall_s=wall,
        startup_s=startup,
    )
    report.orphan_runs = drop_orphan_runs(report.outcomes, configs, uri, since_ms)
    return report


def _client(scheduler: str | Client, workers: int, threads_per_worker: int) -> tuple[Client, bool]:
    """The client to submit to, and whether this call owns it (and closes it)."""
    if not isinstance(scheduler, str):
        return scheduler, False
    if scheduler == LOCAL:
        return _local_client(workers or os.cpu_count() or 1, threads_per_worker), True
    from distributed import Client  # noqa: PLC0415 - hub-only, loaded when used

    try:
        return Client(scheduler, timeout="10s"), True  # type: ignore[no-untyped-call]
    except OSError as exc:  # distributed raises OSError (TimeoutError) when nothing answers
        raise ServiceError(f"Dask scheduler {scheduler}: {exc}") from exc


def _run_on(
    client: Client,
    names: list[str],
    configs: Mapping[str, PipelineConfig],
    args: _RunArgs,
    record: Callable[[GroupOutcome], None],
) -> float:
    """Submit one task per group, collect each as it finishes; return the wall time."""
    from distributed import as_completed  # noqa: PLC0415 - hub-only, loaded when used

    t0 = time.perf_counter()
    # pure=False and a fresh key: a task is a run with side effects (a logged run, a model
    # folder), never merged with another submission of the same arguments
    batch = uuid.uuid4().hex[:12]
    futures = {
        client.submit(_train_task, name, configs[name], args, pure=False, key=f"train-{batch}-{i}"): name
        for i, name in enumerate(names)
    }
    for future in as_completed(futures):  # type: ignore[no-untyped-call]
        name = futures[future]
        try:
            outcome = future.result()
        except Exception as exc:  # a lost worker (KilledWorker): this group only
            outcome = _failure(name, exc, "cluster", 0.0)
        record(outcome)
        future.release()
    return time.perf_counter() - t0


def _failure(name: str, exc: BaseException, where: str, elapsed: float) -> GroupOutcome:
    kind = type(exc).__name__
    return GroupOutcome(
        name, None, error=f"{kind}: {exc}", error_type=kind, worker=where, elapsed_s=round(elapsed, 6)
    )
