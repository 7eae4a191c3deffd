"""Release creation: only validated versions; store record, audit entry and event; the CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from unittest.mock import ANY

import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.errors import ConfigError, NotFoundError
from pumpops.fleet import get_target
from pumpops.registry import EventSink, ModelVersionInfo, Registry
from pumpops.release import read_bundle
from pumpops.release._package import PackageSettings
from pumpops.release._release import create_release
from pumpops.settings import init_workspace
from pumpops.store import TelemetryStore

FAST = PackageSettings(latency_runs=5, max_holdout_windows=300)


def _validated(registry: Registry, info: ModelVersionInfo) -> ModelVersionInfo:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(mlflow|alembic|sqlalchemy)")
        return registry.store_validation(info, passed=True, report_json="{}", against=None, actor="tester")


def test_create_release_unvalidated_refused(
    registry: Registry, sink: EventSink, registered: ModelVersionInfo, tmp_path: Path, skab_small: Path
) -> None:
    with pytest.raises(ConfigError, match="validation is 'none', not 'passed'"):
        create_release(
            registry, sink, name=registered.name, version=registered.version,
            targets=[get_target("x86_64-ipc")], out=tmp_path / "bundles", data=skab_small, actor="tester",
        )  # fmt: skip
    assert not (tmp_path / "bundles").exists()


def test_create_release_record_audit_event(
    registry: Registry,
    sink: EventSink,
    store: TelemetryStore,
    registered: ModelVersionInfo,
    tmp_path: Path,
    skab_small: Path,
) -> None:
    info = _validated(registry, registered)
    targets = [get_target("armv7-controller"), get_target("aarch64-gateway")]
    release = create_release(
        registry, sink, name=info.name, version=info.version, targets=targets,
        out=tmp_path / "bundles", data=skab_small, actor="tester", settings=FAST,
    )  # fmt: skip
    assert store.releases() == [release]
    assert store.get_release(release.release_id) == release
    record = json.loads(release.record_json)
    assert set(record["targets"]) == {"armv7-controller", "aarch64-gateway"}
    controller = record["targets"]["armv7-controller"]
    assert controller["opset"] == 13
    assert controller["decisions"]
    bundle = read_bundle(Path(controller["bundle"]))
    assert bundle.manifest_sha256 == controller["manifest_sha256"]
    assert bundle.manifest.lineage.validation_report_sha256 == info.tags["pumpops.validation_sha256"]
    entry = store.audit_entries()[-1]
    assert (entry.action, entry.subject, entry.actor) == (
        "release.created",
        f"release/{release.release_id}",
        "tester",
    )
    assert store.events(kind="release.created")[-1].subject == f"release/{release.release_id}"


def test_release_cli_create_list_show(
    registry: Registry, registered: ModelVersionInfo, tracking_uri: str, tmp_path: Path, skab_small: Path
) -> None:
    info = _validated(registry, registered)
    registry._client.set_registered_model_alias(info.name, "candidate", str(info.version))
    init_workspace(tmp_path)
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    base = ["--workspace", str(tmp_path), "release"]
    created = runner.invoke(
        app,
        [*base, "create", f"{info.name}@candidate", "--targets", "armv7-controller",
         "--data", str(skab_small), "--tracking-uri", tracking_uri, "--database-url", db,
         "--actor", "tester", "--out", str(tmp_path / "b")],
    )  # fmt: skip  # the alias names the version
    assert created.exit_code == 0, created.output
    assert "armv7-controller:" in created.stdout
    assert "building and measuring target armv7-controller (1 of 1)" in created.stderr  # progress
    listed = runner.invoke(app, [*base, "list", "--db", db, "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)[0]["model"] == info.ref
    as_csv = runner.invoke(app, [*base, "list", "--db", db, "--output", "csv"])
    assert as_csv.stdout.splitlines()[0] == "release,model,group,targets,precision,created,by"
    assert as_csv.stdout.splitlines()[1].startswith(f"1,{info.ref},")
    as_table = runner.invoke(app, [*base, "list", "--db", db])
    assert info.ref in as_table.stdout  # whole, off a terminal
    shown = runner.invoke(app, [*base, "show", "1", "--db", db, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["record"]["targets"]["armv7-controller"]["precision"]
    shown = runner.invoke(app, [*base, "show", "1", "--db", db])
    assert shown.exit_code == 0, shown.output
    assert "armv7-controller" in shown.stdout
    assert str(tmp_path / "b") in shown.stdout
    shown = runner.invoke(app, [*base, "show", "1", "--db", db, "-o", "csv"])
    assert shown.stdout.splitlines()[0] == "field,value"
    missing = runner.invoke(app, [*base, "show", "99", "--db", db])
    assert isinstance(missing.exception, NotFoundError)
    # the version's lineage names its releases
    show = ["models", "show", info.ref, "--tracking-uri", tracking_uri, "--db", db, "--json"]
    lineage = runner.invoke(app, ["--workspace", str(tmp_path), *show])
    assert lineage.exit_code == 0, lineage.output
    assert json.loads(lineage.output)["releases"] == [
        {"release": 1, "targets": ["armv7-controller"], "created_by": "tester", "created": ANY}
    ]
