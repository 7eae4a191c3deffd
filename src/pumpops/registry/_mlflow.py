"""The registry's MLflow boundary: telemetry off, MLflow's noise silenced, its errors made pumpops errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pumpops.errors import InputError, NotFoundError, ServiceError


def _quiet_mlflow_env() -> None:
    from pumpops.pipeline import quiet_mlflow_env  # noqa: PLC0415 - one place for it

    quiet_mlflow_env()


@contextmanager
def _mlflow_calls(what: str) -> Iterator[None]:
    """MLflow's own deprecation warnings silenced; its errors turned into pumpops errors."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415 - heavy, and env first

    from pumpops.pipeline import mlflow_quiet  # noqa: PLC0415 - one place for it

    try:
        with mlflow_quiet():
            yield
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        if code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFoundError(f"{what}: {exc.message}") from exc
        if code == "INVALID_PARAMETER_VALUE":
            raise InputError(f"{what}: {exc.message}") from exc
        raise ServiceError(f"{what}: MLflow failed: {exc.message}") from exc


def _mlflow_error() -> type[Exception]:
    from mlflow.exceptions import MlflowException  # noqa: PLC0415 - heavy, and env first

    return MlflowException
