"""The registry API: registration and lineage tags, promotion rules, alias history, archive, events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pumpops.audit import verify_chain
from pumpops.errors import ConfigError, NotFoundError
from pumpops.pipeline import RunResult
from pumpops.registry import ModelVersionInfo, Registry, alias_name
from pumpops.store import TelemetryStore


def fake_pass(registry: Registry, info: ModelVersionInfo) -> ModelVersionInfo:
    """Store a passed report as ``pumpops validate`` would (validation's own tests test the gates)."""
    return registry.store_validation(
        info, passed=True, report_json='{"passed": true, "gates": []}', against=None, actor="gatekeeper"
    )


def test_register_version_has_lineage_tags(
    registry: Registry, runs: list[RunResult], model_name: str
) -> None:
    run = runs[0]
    info = registry.register(run, name=model_name, actor="ann")
    lineage = json.loads((run.model_dir / "lineage.json").read_bytes())
    assert info.ref == f"{model_name}/1"
    assert info.run_id == run.run_id
    t = info.tags
    assert t["pumpops.dataset_digest"] == run.dataset_digest
    assert t["pumpops.config_hash"] == run.config_hash
    assert t["pumpops.code_commit"] == lineage["code_commit"]
    assert t["pumpops.package_set_sha256"] == lineage["package_set_sha256"]
    assert t["pumpops.seed"] == "3"
    assert t["pumpops.group"] == lineage["group"]
    assert t["pumpops.detector_kind"] == "pca_t2q"
    assert t["pumpops.model_sha256"] == run.onnx_sha256
    assert float(t["pumpops.metric.f1"]) == pytest.approx(run.metrics["f1"])
    assert t["pumpops.parent"] == "none"
    assert info.validation == "none"


def test_register_same_run_twice_returns_the_same_version(
    registry: Registry, runs: list[RunResult], model_name: str
) -> None:
    first = registry.register(runs[0], name=model_name, actor="ann")
    again = registry.register(model_dir=runs[0].model_dir, name=model_name, actor="ann")  # run found by model
    assert again.ref == first.ref


def test_register_writes_audit_entry_and_event(
    registry: Registry, store: TelemetryStore, runs: list[RunResult], model_name: str
) -> None:
    info = registry.register(runs[0], name=model_name, actor="ann")
    entry = store.audit_entries()[-1]
    assert (entry.actor, entry.action, entry.subject) == ("ann", "model.registered", info.ref)
    event = store.events()[-1]
    assert (event.kind, event.subject) == ("model.registered", info.ref)
    assert json.loads(event.payload_json)["dataset_digest"] == runs[0].dataset_digest


def test_list_and_show_lineage_with_parent_champion(
    registry: Registry, runs: list[RunResult], model_name: str
) -> None:
    first = fake_pass(registry, registry.register(runs[0], name=model_name, actor="ann"))
    group = first.group
    registry.promote(model_name, 1, group, actor="ann")
    second = registry.register(runs[1], name=model_name, actor="ann")
    listed = [v.ref for v in registry.list_versions(group=group) if v.name == model_name]
    assert listed == [f"{model_name}/1", f"{model_name}/2"]
    lineage = second.lineage()
    assert lineage["parent"] == f"{model_name}/1"
    assert lineage["run_id"] == runs[1].run_id
    assert lineage["dataset_digest"] == runs[1].dataset_digest
    assert lineage["config_hash"] == runs[1].config_hash
    assert lineage["validation"] == "none"
    assert lineage["releases"] == []
    assert registry.get(model_name, 1).aliases == (alias_name(group, "champion"),)
    listed_aliases = {v.version: v.aliases for v in registry.list_versions() if v.name == model_name}
    assert listed_aliases == {1: (alias_name(group, "champion"),), 2: ()}


def test_promote_without_passed_validation_is_refused(
    registry: Registry, store: TelemetryStore, runs: list[RunResult], model_name: str
) -> None:
    info = registry.register(runs[0], name=model_name, actor="ann")
    with pytest.raises(ConfigError, match="no passed validation report"):
        registry.promote(model_name, 1, info.group, actor="ann")
    failed = registry.store_validation(info, passed=False, report_json="{}", against=None, actor="ann")
    assert failed.validation == "failed"
    assert failed.aliases == ()  # a failure does not make it the challenger
    with pytest.raises(ConfigError, match="validation: failed"):
        registry.promote(model_name, 1, info.group, actor="ann")
    assert store.alias_history(group=info.group, alias=alias_name(info.group, "champion")) == []


def test_promote_validated_for_another_group_is_refused(
    registry: Registry, runs: list[RunResult], model_name: str
) -> None:
    fake_pass(registry, registry.register(runs[0], name=model_name, actor="ann"))
    with pytest.raises(ConfigError, match="trained for group"):
        registry.promote(model_name, 1, "other-group", actor="ann")


def test_validation_pass_sets_challenger_and_stores_report(
    registry: Registry, store: TelemetryStore, runs: list[RunResult], model_name: str, tracking_uri: str
) -> None:
    from mlflow.tracking import MlflowClient

    info = fake_pass(registry, registry.register(runs[0], name=model_name, actor="ann"))
    assert info.validation == "passed"
    assert len(info.tags["pumpops.validation_sha256"]) == 64
    assert info.aliases == (alias_name(info.group, "challenger"),)
    text = MlflowClient(tracking_uri).download_artifacts(info.run_id, "validation-report.json")
    assert json.loads(Path(text).read_text(encoding="utf-8"))["passed"] is True
    assert store.events()[-1].kind == "model.validated"
    promoted = registry.promote(model_name, 1, info.group, actor="ann")
    assert promoted.aliases == (alias_name(info.group, "champion"),)  # challenger alias moved on


def test_promote_force_without_reason_is_refused(
    registry: Registry, runs: list[RunResult], model_name: str
) -> None:
    info = registry.register(runs[0], name=model_name, actor="ann")
    for reason in (None, "", "   "):
        with pytest.raises(ConfigError, match="--reason"):
            registry.promote(model_name, 1, info.group, actor="ann", force=True, reason=reason)


def test_promote_force_with_reason_is_audited_and_chain_verifies(
    registry: Registry, store: TelemetryStore, runs: list[RunResult], model_name: str
) -> None:
    info = registry.register(runs[0], name=model_name, actor="ann")
    registry.promote(model_name, 1, info.group, actor="bob", force=True, reason="hotfix for pump p-7")
    entries = store.audit_entries()
    assert verify_chain(entries).ok
    entry = entries[-1]
    payload = json.loads(entry.payload_json)
    assert (entry.actor, entry.action, entry.subject) == ("bob", "model.promoted", info.ref)
    assert payload["forced"] is True
    assert payload["reason"] == "hotfix for pump p-7"
    assert "no passed validation report" in payload["overridden"][0]
    (period,) = store.alias_history(group=info.group)
    assert (period.set_by, period.reason) == ("bob", "hotfix for pump p-7")


def test_alias_history_records_from_to_and_set_by_across_two_promotions(
    registry: Registry, store: TelemetryStore, runs: list[RunResult], model_name: str
) -> None:
    one = fake_pass(registry, registry.register(runs[0], name=model_name, actor="ann"))
    two = fake_pass(registry, registry.register(runs[1], name=model_name, actor="ann"))
    group = one.group
    registry.promote(model_name, 1, group, actor="ann")
    registry.promote(model_name, 2, group, actor="bob")
    champions = registry.history(group)
    champions = [p for p in champions if p.alias == alias_name(group, "champion")]
    assert [(p.version, p.set_by) for p in champions] == [(1, "ann"), (2, "bob")]
    assert champions[0].to_us == champions[1].from_us
    assert champions[1].to_us is None
    assert registry.champion(group) is not None
    assert registry.champion(group).ref == two.ref  # type: ignore[union-attr]
    assert registry.get(model_name, 1).aliases == ()
    promoted = [json.loads(e.payload_json) for e in store.events(kind="model.promoted")]
    assert [p["previous"] for p in promoted] == [None, one.ref]


def test_promote_current_champion_again_is_refused(
    registry: Registry, runs: list[RunResult], model_name: str
) -> None:
    info = fake_pass(registry, registry.register(runs[0], name=model_name, actor="ann"))
    registry.promote(model_name, 1, info.group, actor="ann")
    with pytest.raises(ConfigError, match="already the champion"):
        registry.promote(model_name, 1, info.group, actor="ann")


def test_archive_removes_aliases_closes_history_and_blocks_promotion(
    registry: Registry, store: TelemetryStore, runs: list[RunResult], model_name: str
) -> None:
    info = fake_pass(registry, registry.register(runs[0], name=model_name, actor="ann"))
    registry.promote(model_name, 1, info.group, actor="ann")
    archived = registry.archive(model_name, 1, actor="carol", reason="replaced")
    assert archived.archived
    assert archived.aliases == ()
    assert all(p.to_us is not None for p in store.alias_history(group=info.group))
    assert registry.champion(info.group) is None
    with pytest.raises(ConfigError, match="archived"):
        registry.promote(model_name, 1, info.group, actor="ann", force=True, reason="x")
    with pytest.raises(ConfigError, match="already archived"):
        registry.archive(model_name, 1, actor="carol")
    assert store.audit_entries()[-1].action == "model.archived"
    assert store.events()[-1].kind == "model.archived"


def test_every_change_is_one_audit_entry_and_one_event_in_order(
    registry: Registry, store: TelemetryStore, runs: list[RunResult], model_name: str
) -> None:
    info = fake_pass(registry, registry.register(runs[0], name=model_name, actor="ann"))
    registry.promote(model_name, 1, info.group, actor="ann")
    registry.archive(model_name, 1, actor="ann")
    kinds = ["model.registered", "model.validated", "model.promoted", "model.archived"]
    assert [e.kind for e in store.events()] == kinds
    assert [e.action for e in store.audit_entries()] == kinds
    assert verify_chain(store.audit_entries()).ok


def test_unknown_version_is_not_found(registry: Registry, model_name: str) -> None:
    with pytest.raises(NotFoundError):
        registry.get(model_name, 9)


def test_register_reuse_is_flagged_and_an_archived_version_is_not_reused(
    registry: Registry, store: TelemetryStore, runs: list[RunResult], model_name: str
) -> None:
    first = registry.register(runs[0], name=model_name, actor="ann")
    assert not first.reused
    again = registry.register(runs[0], name=model_name, actor="ann")
    assert again.reused
    assert again.ref == first.ref
    assert [e.action for e in store.audit_entries()] == ["model.registered"]  # a reuse records nothing
    registry.archive(model_name, 1, actor="carol")
    fresh = registry.register(runs[0], name=model_name, actor="ann")  # "register the run again to use it"
    assert not fresh.reused
    assert fresh.ref == f"{model_name}/2"
    assert not fresh.archived


def test_resolve_takes_name_version_and_name_alias(
    registry: Registry, runs: list[RunResult], model_name: str
) -> None:
    info = fake_pass(registry, registry.register(runs[0], name=model_name, actor="ann"))
    assert registry.resolve(f"{model_name}/1").ref == info.ref
    assert registry.resolve(f"{model_name}@{info.group}-challenger").ref == info.ref
    assert registry.resolve(f"{model_name}@challenger").ref == info.ref
    with pytest.raises(NotFoundError):
        registry.resolve(f"{model_name}@champion")
    with pytest.raises(ConfigError, match="<name>@<alias>"):
        registry.resolve(model_name)
