"""``pumpops keys init|rotate`` and ``pumpops tuf publish|export`` on a workspace, with real bundles.

Bundles are written with the packaging part's ``write_bundle`` (the
``pumpops.bundle/1`` format); a device then installs from the exported folder.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata
from typer.testing import CliRunner

from pumpops import errors
from pumpops.cli import app
from pumpops.edge import EdgeUpdater
from pumpops.schema import (
    BundleAlarm,
    BundleBuild,
    BundleInputs,
    BundleLineage,
    BundleManifest,
    BundleSensor,
    BundleTarget,
    write_bundle,
)
from pumpops.store import open_store


def make_bundle(out: Path, version: int, *, group: str = "north-sea", target: str = "x86-64-ipc") -> Path:
    manifest = BundleManifest(
        model_name="pumpops-skab",
        model_version=version,
        group=group,
        target=BundleTarget(
            id=target,
            arch="x86_64",
            opset=17,
            ir_version=8,
            onnxruntime=">=1.16",
            execution_providers=("CPUExecutionProvider",),
            profile_sha256="0" * 64,
        ),
        min_agent_version="1.0.0",
        inputs=BundleInputs(
            sensors=(BundleSensor(name="pressure", unit="Pa"),), window_rows=8, dtype="float32"
        ),
        alarm=BundleAlarm(compare="score > threshold", threshold="calibration.threshold", smoothing={}),
        calibrations={},
        detector={},
        build=BundleBuild(
            precision="float32", source_opset=17, optimisation="none", decisions=(), budgets={}
        ),
        lineage=BundleLineage(
            run_id=None, dataset_digest=None, validation_report_sha256=None, source_model_sha256="1" * 64
        ),
        files={},
    )
    return write_bundle(out, manifest, {"model.onnx": f"model v{version}".encode()}).folder


def run(workspace: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["-w", str(workspace), *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    run(ws, "init", str(ws))
    run(ws, "keys", "init")
    return ws


def device(workspace: Path, repository: Path, tmp: Path, root: bytes | None = None) -> EdgeUpdater:
    return EdgeUpdater(
        trusted_root=root or (workspace / "tuf/repository/metadata/1.root.json").read_bytes(),
        repository=repository,
        state_dir=tmp / "dev/state",
        install_dir=tmp / "dev/models",
        group="north-sea",
        target="x86-64-ipc",
        agent_version="1.0.0",
    )


def test_keys_init_writes_offline_root_key_apart_with_0600(workspace: Path) -> None:
    root_file = workspace / "keys" / "OFFLINE-root-key.json"
    assert stat.S_IMODE(os.stat(root_file).st_mode) == 0o600
    assert sorted(p.name for p in (workspace / "keys/online").iterdir()) == [
        "snapshot.json",
        "targets.json",
        "timestamp.json",
    ]
    assert "root" not in (workspace / "keys/online/targets.json").read_text()
    result = CliRunner().invoke(app, ["-w", str(workspace), "keys", "init"])
    assert result.exit_code != 0


def test_publish_export_and_install_from_folder(workspace: Path, tmp_path: Path) -> None:
    make_bundle(tmp_path / "bundles", 1)
    make_bundle(tmp_path / "bundles", 1, target="aarch64-gateway")
    out = run(workspace, "tuf", "publish", str(tmp_path / "bundles"))
    assert "models/north-sea/x86-64-ipc/1" in out
    run(workspace, "tuf", "export", "--dir", str(tmp_path / "usb"))
    installed = device(workspace, tmp_path / "usb", tmp_path).update()
    assert installed.version == "1"
    assert (installed.folder / "model.onnx").read_bytes() == b"model v1"
    with open_store(f"sqlite:///{workspace / 'pumpops.db'}") as store:
        actions = [e.action for e in store.audit_entries()]
        assert "release.published" in actions


def test_keys_rotate_timestamp_then_old_key_is_refused(workspace: Path, tmp_path: Path) -> None:
    make_bundle(tmp_path / "bundles", 1)
    run(workspace, "tuf", "publish", str(tmp_path / "bundles"))
    old_key = (workspace / "keys/online/timestamp.json").read_text()
    run(workspace, "keys", "rotate", "timestamp")
    assert (workspace / "keys/online/timestamp.json").read_text() != old_key
    repo = workspace / "tuf/repository"
    assert device(workspace, repo, tmp_path).update().version == "1"  # learns root 2
    # The old timestamp key signs a newer timestamp: refused.
    from pumpops.release._keys import load_signer

    (workspace / "old.json").write_text(old_key)
    md = Metadata.from_bytes((repo / "metadata/timestamp.json").read_bytes())
    md.signed.version += 1
    md.sign(load_signer(workspace / "old.json")[0])
    (repo / "metadata/timestamp.json").write_bytes(md.to_bytes())
    with pytest.raises(errors.UntrustedSignatureError):
        device(workspace, repo, tmp_path).update()


def test_keys_rotate_root_signed_by_old_and_new(workspace: Path, tmp_path: Path) -> None:
    make_bundle(tmp_path / "bundles", 1)
    run(workspace, "tuf", "publish", str(tmp_path / "bundles"))
    old_root = (workspace / "keys/OFFLINE-root-key.json").read_text()
    run(workspace, "keys", "rotate", "root")
    meta = workspace / "tuf/repository/metadata"
    root2 = Metadata.from_bytes((meta / "2.root.json").read_bytes())
    root1 = Metadata.from_bytes((meta / "1.root.json").read_bytes())
    root1.signed.verify_delegate("root", root2.signed_bytes, root2.signatures)  # old keys signed it
    root2.signed.verify_delegate("root", root2.signed_bytes, root2.signatures)  # new keys signed it
    assert (workspace / "keys/OFFLINE-root-key.json").read_text() != old_root
    # A device provisioned with root 1 follows the rotation.
    assert device(workspace, workspace / "tuf/repository", tmp_path).update().version == "1"
    # The new root key alone can then rotate online keys.
    run(workspace, "keys", "rotate", "snapshot")
    make_bundle(tmp_path / "bundles2", 2)
    run(workspace, "tuf", "publish", str(tmp_path / "bundles2"))
    assert device(workspace, workspace / "tuf/repository", tmp_path).update().version == "2"


def test_root_rotation_signed_only_by_new_key_is_refused(workspace: Path, tmp_path: Path) -> None:
    from pumpops.release._keys import generate_signer
    from pumpops.release._tuf import TufRepository

    make_bundle(tmp_path / "bundles", 1)
    run(workspace, "tuf", "publish", str(tmp_path / "bundles"))
    repo = TufRepository(workspace / "tuf/repository")
    repo.rotate_root([], [generate_signer()])  # an attacker's root, without the old key's signature
    with pytest.raises(errors.UntrustedSignatureError, match="root"):
        device(workspace, repo.folder, tmp_path).update()
    assert not (tmp_path / "dev/models/CURRENT").exists()


def test_expiry_periods_come_from_settings_and_resign_renews(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    ws = tmp_path / "ws"
    run(ws, "init", str(ws))
    with (ws / "pumpops.toml").open("a", encoding="utf-8") as toml:
        toml.write("\n[tuf]\ntimestamp_expiry_days = 3\nsnapshot_expiry_days = 10\n")
    run(ws, "keys", "init")
    meta = ws / "tuf/repository/metadata"
    before = Metadata.from_bytes((meta / "timestamp.json").read_bytes()).signed
    assert abs(before.expires - (datetime.now(UTC) + timedelta(days=3))) < timedelta(minutes=5)
    assert "timestamp version 2" in run(ws, "tuf", "resign")
    after = Metadata.from_bytes((meta / "timestamp.json").read_bytes()).signed
    assert after.version == before.version + 1
    snapshot = Metadata.from_bytes(
        (meta / f"{after.snapshot_meta.version}.snapshot.json").read_bytes()
    ).signed
    assert abs(snapshot.expires - (datetime.now(UTC) + timedelta(days=10))) < timedelta(minutes=5)


def test_publish_same_version_with_other_bytes_is_refused(workspace: Path, tmp_path: Path) -> None:
    make_bundle(tmp_path / "a", 1)
    run(workspace, "tuf", "publish", str(tmp_path / "a"))
    folder = make_bundle(tmp_path / "b", 1)
    (folder / "model.onnx").write_bytes(b"other")  # read_bundle refuses it before TUF does
    result = CliRunner().invoke(app, ["-w", str(workspace), "tuf", "publish", str(tmp_path / "b")])
    assert result.exit_code != 0


def test_release_publish_by_release_number_and_release_export(workspace: Path, tmp_path: Path) -> None:
    make_bundle(tmp_path / "bundles", 4)
    make_bundle(tmp_path / "bundles", 4, target="aarch64-gateway")
    with open_store(f"sqlite:///{workspace / 'pumpops.db'}") as store:
        release = store.add_release(
            "pumpops-skab",
            4,
            "north-sea",
            ["x86-64-ipc", "aarch64-gateway"],
            created_by="test",
            bundle_root=str(tmp_path / "bundles"),
            record={},
        )
    out = run(workspace, "release", "publish", str(release.release_id))
    assert "models/north-sea/aarch64-gateway/4" in out
    run(workspace, "release", "export", "--dir", str(tmp_path / "mirror"))
    assert device(workspace, tmp_path / "mirror", tmp_path).update().version == "4"
    result = CliRunner().invoke(app, ["-w", str(workspace), "release", "publish", "999"])
    assert result.exit_code != 0


def test_key_folders_are_0700_and_every_key_file_0600(workspace: Path) -> None:
    keys = workspace / "keys"
    for folder in (keys, keys / "online"):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder
    for file in (keys / "OFFLINE-root-key.json", *(keys / "online").iterdir()):
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o600, file


def test_intent_pin_signs_the_group_role_and_the_device_rolls_back(workspace: Path, tmp_path: Path) -> None:
    for version in (1, 2):
        make_bundle(tmp_path / "bundles", version)
    run(workspace, "tuf", "publish", str(tmp_path / "bundles"))
    repository = workspace / "tuf/repository"
    dev = device(workspace, repository, tmp_path)
    assert dev.update().version == "2"
    assert dev.update("1").hint_refused is not None  # an MQTT hint alone does not roll back

    out = run(workspace, "tuf", "intent", "north-sea", "--pin", "1", "--reason", "bad v2", "--json")
    shown = json.loads(out)
    assert (shown["pinned"], shown["rollback_floor"], shown["reason"]) == ("1", None, "bad v2")
    assert shown["published_versions"] == ["1", "2"]
    role = Metadata.from_bytes(
        (repository / f"metadata/{shown['targets_role_version']}.north-sea.json").read_bytes()
    )
    assert role.signed.unrecognized_fields["x-pumpops-intent"]["north-sea"]["pinned"] == "1"
    back = dev.update()  # no hint at all: the signed pin moves the device back
    assert (back.version, back.changed) == ("1", True)

    run(workspace, "release", "intent", "north-sea", "--unpin")  # the same command under `release`
    assert dev.update().version == "2"
    with open_store(f"sqlite:///{workspace / 'pumpops.db'}") as store:
        signed = [e for e in store.audit_entries() if e.action == "release.intent_signed"]
    assert [json.loads(e.payload_json)["pinned"] for e in signed] == ["1", None]
    assert all(e.subject == "group/north-sea" for e in signed)


@pytest.mark.parametrize(
    ("args", "error", "says"),
    [
        (["--pin", "7"], errors.NotFoundError, "version 7 is not published for group north-sea"),
        (["--pin", "one"], errors.ConfigError, "must be dotted whole numbers"),
        (["--floor", "2", "--pin", "1"], errors.ConfigError, "below the rollback floor 2"),
        (["--pin", "1", "--unpin"], errors.ConfigError, "give one of them"),
        (["--floor", "1", "--no-floor"], errors.ConfigError, "give one of them"),
        (["--floor", "1.x"], errors.ConfigError, "must be dotted whole numbers"),
    ],
)
def test_intent_refuses_what_no_device_could_follow(
    workspace: Path, tmp_path: Path, args: list[str], error: type[Exception], says: str
) -> None:
    make_bundle(tmp_path / "bundles", 1)
    run(workspace, "tuf", "publish", str(tmp_path / "bundles"))
    before = sorted(p.name for p in (workspace / "tuf/repository/metadata").iterdir())
    result = CliRunner().invoke(app, ["-w", str(workspace), "tuf", "intent", "north-sea", *args])
    assert isinstance(result.exception, error), result.output
    assert says in str(result.exception)
    assert sorted(p.name for p in (workspace / "tuf/repository/metadata").iterdir()) == before


def test_intent_without_change_shows_it_and_an_unchanged_pin_signs_nothing(
    workspace: Path, tmp_path: Path
) -> None:
    make_bundle(tmp_path / "bundles", 1)
    run(workspace, "tuf", "publish", str(tmp_path / "bundles"))
    assert json.loads(run(workspace, "tuf", "intent", "north-sea", "--json"))["pinned"] is None
    run(workspace, "tuf", "intent", "north-sea", "--floor", "1")
    timestamp = (workspace / "tuf/repository/metadata/timestamp.json").read_bytes()
    run(workspace, "tuf", "intent", "north-sea", "--floor", "1")
    assert (workspace / "tuf/repository/metadata/timestamp.json").read_bytes() == timestamp
    assert json.loads(run(workspace, "tuf", "intent", "north-sea", "--json"))["rollback_floor"] == "1"
