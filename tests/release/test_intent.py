"""The hub's signed intent in the repository: where it is written, what is refused, how a device reads it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from tuf.api.metadata import Metadata

from pumpops import errors
from pumpops.edge import EdgeUpdater
from pumpops.release import (
    INTENT_FIELD,
    PublishedFile,
    PublishedTarget,
    TufRepository,
    UpdateIntent,
    generate_signer,
)

GROUP = "north-sea"
TARGET = "x86-64-ipc"


def _bundle(folder: Path, version: str, group: str = GROUP) -> PublishedTarget:
    where = folder / group / version
    where.mkdir(parents=True)
    model = f"model {group} {version}".encode()
    (where / "model.onnx").write_bytes(model)
    manifest = {
        "group": group,
        "target": {"id": TARGET},
        "model_version": int(version),
        "min_agent_version": "1.0.0",
        "files": {"model.onnx": {"sha256": hashlib.sha256(model).hexdigest()}},
    }
    (where / "manifest.json").write_text(json.dumps(manifest))
    files = tuple(PublishedFile(n, where / n) for n in ("manifest.json", "model.onnx"))
    return PublishedTarget(group, TARGET, version, "1.0.0", files)


def _repo(tmp: Path, *, delegate: bool) -> tuple[TufRepository, dict[str, Any]]:
    signers: dict[str, Any] = {r: [generate_signer()] for r in ("targets", "snapshot", "timestamp")}
    repo = TufRepository.create(
        tmp / "repo", root_signers=[generate_signer()], online_signers=signers, delegate_per_group=delegate
    )
    repo.publish([_bundle(tmp / "b", v) for v in ("1", "2")], signers)
    return repo, signers


def _device(repo: TufRepository, tmp: Path) -> EdgeUpdater:
    return EdgeUpdater(
        trusted_root=repo.root_bytes(1),
        repository=repo.folder,
        state_dir=tmp / "dev" / "state",
        install_dir=tmp / "dev" / "models",
        group=GROUP,
        target=TARGET,
        agent_version="1.0.0",
    )


@pytest.mark.parametrize("delegate", [True, False], ids=["group_role", "top_level_targets"])
def test_pin_is_signed_where_the_group_targets_are_and_the_device_follows(
    tmp_path: Path, delegate: bool
) -> None:
    repo, signers = _repo(tmp_path, delegate=delegate)
    device = _device(repo, tmp_path)
    assert device.update().version == "2"
    sizes = repo.set_intent(GROUP, UpdateIntent(pinned="1", reason="bad v2"), signers)
    assert sizes is not None
    role = GROUP if delegate else "targets"
    md = repo.targets(role)
    stored = md.signed.unrecognized_fields[INTENT_FIELD][GROUP]
    assert (stored["pinned"], stored["reason"]) == ("1", "bad v2")
    assert stored["issued"].endswith("Z")
    assert f"{md.signed.version}.{role}.json" in sizes
    assert device.update().version == "1"
    assert device.signed_intent().pinned == "1"


def test_each_intent_change_raises_the_role_version_and_snapshot(tmp_path: Path) -> None:
    repo, signers = _repo(tmp_path, delegate=True)
    versions = [(repo.targets(GROUP).signed.version, repo.snapshot().signed.version)]
    for intent in (UpdateIntent(pinned="1"), UpdateIntent(pinned="2"), UpdateIntent(rollback_floor="2")):
        repo.set_intent(GROUP, intent, signers)
        versions.append((repo.targets(GROUP).signed.version, repo.snapshot().signed.version))
    assert versions == sorted(set(versions))  # strictly increasing: an older intent is older metadata
    assert repo.intent(GROUP) == UpdateIntent(rollback_floor="2", issued=repo.intent(GROUP).issued, reason="")


def test_floor_for_a_group_without_a_role_creates_and_delegates_it(tmp_path: Path) -> None:
    repo, signers = _repo(tmp_path, delegate=True)
    assert repo.set_intent("gulf", UpdateIntent(rollback_floor="3"), signers) is not None
    top = repo.targets()
    assert top.signed.delegations is not None
    assert "gulf" in (top.signed.delegations.roles or {})
    assert repo.intent("gulf").rollback_floor == "3"
    assert repo.published_versions("gulf") == set()


@pytest.mark.parametrize(
    ("group", "intent", "error", "says"),
    [
        ("north sea", UpdateIntent(pinned="1"), errors.ConfigError, "group 'north sea'"),
        (GROUP, UpdateIntent(pinned="3"), errors.NotFoundError, "published: 1, 2"),
        ("gulf", UpdateIntent(pinned="1"), errors.NotFoundError, "not published for group gulf"),
    ],
)
def test_set_intent_refuses_and_writes_nothing(
    tmp_path: Path, group: str, intent: UpdateIntent, error: type[Exception], says: str
) -> None:
    repo, signers = _repo(tmp_path, delegate=True)
    before = sorted(p.name for p in repo.metadata_dir.iterdir())
    with pytest.raises(error, match=says):
        repo.set_intent(group, intent, signers)
    assert sorted(p.name for p in repo.metadata_dir.iterdir()) == before


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"pinned": "v2"}, "pinned version 'v2' must be dotted whole numbers"),
        ({"rollback_floor": "2.x"}, "rollback floor '2.x'"),
        ({"pinned": "1", "rollback_floor": "1.1"}, "below the rollback floor 1.1"),
    ],
)
def test_update_intent_refuses_what_no_device_could_follow(kwargs: dict[str, str], says: str) -> None:
    with pytest.raises(errors.ConfigError, match=says):
        UpdateIntent(**kwargs)


def test_a_malformed_stored_intent_is_an_integrity_error(tmp_path: Path) -> None:
    repo, signers = _repo(tmp_path, delegate=True)
    repo.set_intent(GROUP, UpdateIntent(pinned="1"), signers)
    path = repo.metadata_dir / f"{repo.targets(GROUP).signed.version}.{GROUP}.json"
    md = Metadata.from_bytes(path.read_bytes())
    md.signed.unrecognized_fields[INTENT_FIELD] = {GROUP: {"pinned": "one"}}
    path.write_bytes(md.to_bytes())
    with pytest.raises(errors.IntegrityError, match="signed intent"):
        repo.intent(GROUP)


def test_a_stored_intent_field_that_is_not_an_object_is_an_integrity_error(tmp_path: Path) -> None:
    repo, signers = _repo(tmp_path, delegate=True)
    repo.set_intent(GROUP, UpdateIntent(pinned="1"), signers)
    path = repo.metadata_dir / f"{repo.targets(GROUP).signed.version}.{GROUP}.json"
    md = Metadata.from_bytes(path.read_bytes())
    md.signed.unrecognized_fields[INTENT_FIELD] = ["pin", "1"]
    path.write_bytes(md.to_bytes())
    for call in (lambda: repo.intent(GROUP), lambda: repo.set_intent(GROUP, UpdateIntent(), signers)):
        with pytest.raises(errors.IntegrityError, match="malformed x-pumpops-intent"):
            call()
