"""``pumpops audit verify|export|anchor`` with the hub's audit key, on SQLite and PostgreSQL.

Issue 13 row 11 and its relatives through the command line: what a database
writer does fails ``audit verify`` with and without ``--head``; the signed
head travels with an export, into the TUF repository at each publish and into
a ``--head`` file, and each of those catches a cut or rewritten chain on its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pumpops.audit import ANCHORS_FILE, AUDIT_KEY_FILE, AuditKey, chain_entry, workspace_signer
from pumpops.cli import app
from pumpops.errors import ConfigError, IntegrityError
from pumpops.release import open_repository
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
from pumpops.settings import init_workspace, load_settings
from pumpops.store import TelemetryStore, open_store

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z

Raw = Callable[[str], None]


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The current directory is an empty workspace; no PUMPOPS_* variables leak in."""
    init_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    for name in ("PUMPOPS_DATABASE_URL", "PUMPOPS_WORKSPACE", "PUMPOPS_ACTOR"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output, result.exception


@pytest.fixture
def signed(db_url: str, store: TelemetryStore, tmp_path: Path) -> str:
    """Five entries appended by the hub (signed with the workspace key, anchored); yields the URL."""
    with open_store(db_url, audit_signer=workspace_signer(tmp_path)) as hub:
        for i in range(1, 6):
            hub.append_audit("ann@hq", "model.registered", f"m/{i}", {"i": i}, time_us=T0 + i)
    return db_url


def forged_insert(store: TelemetryStore, raw: Raw) -> None:
    """Issue 13 row 11: ``model.promoted`` by someone else, correct link and hash, no key."""
    tail = store.audit_entries()[-1]
    e = chain_entry(tail.seq + 1, T0 + 9, "mallory@x", "model.promoted", "m/evil", {}, tail.hash)
    raw(
        "INSERT INTO audit (seq, time_us, actor, action, subject, payload, prev_hash, hash) VALUES "
        f"({e.seq}, {e.time_us}, '{e.actor}', '{e.action}', '{e.subject}', '{{}}', "
        f"'{e.prev_hash}', '{e.hash}')"
    )


def test_cli_verify_signed_chain_ok_counts_signatures_and_anchors(signed: str, tmp_path: Path) -> None:
    code, output, _ = run("audit", "verify", "--db", signed, "--json")
    assert code == 0, output
    record = json.loads(output)
    assert (record["ok"], record["signed"], record["legacy"], record["anchors"]) == (True, 5, 0, 5)
    assert record["key_id"] == workspace_signer(tmp_path).key.key_id


def test_cli_row_11_forged_append_fails_verify_with_and_without_head(
    signed: str, store: TelemetryStore, raw: Raw
) -> None:
    honest_head = store.audit_entries()[-1].hash
    forged_insert(store, raw)
    forged_head = store.audit_entries()[-1].hash
    for extra in ([], ["--head", honest_head], ["--head", forged_head]):
        code, _, exc = run("audit", "verify", "--db", signed, *extra)
        assert code == 1
        assert isinstance(exc, IntegrityError)
        assert "entry seq 6" in str(exc)
        assert "unsigned" in str(exc)
        assert "without the hub's audit key" in str(exc)


def test_cli_verify_without_the_workspace_key_cannot_vouch_for_signed_entries(
    signed: str, tmp_path: Path
) -> None:
    (tmp_path / AUDIT_KEY_FILE).unlink()
    code, _, exc = run("audit", "verify", "--db", signed)
    assert code == 1
    assert "unverified" in str(exc)
    assert not (tmp_path / AUDIT_KEY_FILE).exists()  # verify never creates a key


def test_cli_anchor_head_file_catches_a_cut_tail_when_the_anchors_file_is_gone(
    signed: str, raw: Raw, tmp_path: Path
) -> None:
    code, output, _ = run("audit", "anchor", "--db", signed, "--out", str(tmp_path / "head.json"))
    assert code == 0, output
    assert "anchored head seq 5" in output
    raw("DELETE FROM audit WHERE seq >= 4")
    (tmp_path / ANCHORS_FILE).unlink()  # only the head kept elsewhere is left
    code, _, exc = run("audit", "verify", "--db", signed)
    assert code == 0  # nothing at hand says the chain was longer
    code, _, exc = run("audit", "verify", "--db", signed, "--head", str(tmp_path / "head.json"))
    assert code == 1
    assert "entry seq 4" in str(exc)
    assert "truncated" in str(exc)
    assert "--head" in str(exc)


def test_cli_head_option_that_is_neither_hash_nor_file_is_a_config_error(signed: str) -> None:
    code, _, exc = run("audit", "verify", "--db", signed, "--head", "no-such-file")
    assert code != 0
    assert isinstance(exc, ConfigError)
    assert "neither a head hash" in str(exc)


# -- exports --------------------------------------------------------------------------------------------


def export(url: str, path: Path) -> list[str]:
    code, output, _ = run("audit", "export", "--db", url, "--out", str(path))
    assert code == 0, output
    return path.read_text(encoding="utf-8").splitlines()


def rewrite(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_export_carries_signatures_and_a_signed_head_and_verifies(signed: str, tmp_path: Path) -> None:
    lines = export(signed, tmp_path / "a.jsonl")
    header = json.loads(lines[0])
    assert header["signed_head"]["seq"] == 5
    assert all("signature" in json.loads(line) for line in lines[1:])
    code, output, _ = run("audit", "verify", "--file", str(tmp_path / "a.jsonl"))
    assert code == 0, output
    assert "5 signed by audit key" in output
    assert "1 anchor(s) matched" in output


def _edit_signed_head(lines: list[str]) -> list[str]:
    header = json.loads(lines[0])
    header["signed_head"]["seq"] = 4
    header["signed_head"]["hash"] = json.loads(lines[4])["hash"]
    return [json.dumps(header), *lines[1:]]


def _cut_last_entry_and_fix_header(lines: list[str]) -> list[str]:
    header = json.loads(lines[0])
    header |= {"count": 4, "last_hash": json.loads(lines[4])["hash"], "chain_head_seq": 4}
    return [json.dumps(header), *lines[1:5]]


def _drop_the_signed_head(lines: list[str]) -> list[str]:
    header = json.loads(lines[0])
    header["signed_head"] = None
    return [json.dumps(header), *lines[1:]]


def _rehash_and_unsign_last(lines: list[str]) -> list[str]:
    last = json.loads(lines[5])
    del last["signature"]
    e = chain_entry(5, last["time_us"], "mallory@x", last["action"], last["subject"], {}, last["prev_hash"])
    last |= {"actor": e.actor, "payload": {}, "hash": e.hash}
    header = json.loads(lines[0])
    header["last_hash"] = e.hash
    return [json.dumps(header), *lines[1:5], json.dumps(last)]


# (name, tamper, words in the failure)
EXPORT_ATTACKS = [
    ("edited-signed-head", _edit_signed_head, "does not match its signature"),
    ("cut-last-entry", _cut_last_entry_and_fix_header, "truncated"),
    ("signed-head-removed", _drop_the_signed_head, "no signed head"),
    ("last-entry-rewritten-unsigned", _rehash_and_unsign_last, "unsigned"),
]


@pytest.mark.parametrize(
    ("tamper", "words"), [a[1:] for a in EXPORT_ATTACKS], ids=[a[0] for a in EXPORT_ATTACKS]
)
def test_cli_verify_file_of_a_tampered_export_fails(
    signed: str, tmp_path: Path, tamper: Callable[[list[str]], list[str]], words: str
) -> None:
    lines = export(signed, tmp_path / "a.jsonl")
    code, _, exc = run("audit", "verify", "--file", str(rewrite(tmp_path / "b.jsonl", tamper(lines))))
    assert code == 1
    assert isinstance(exc, IntegrityError)
    assert words in str(exc)


def test_cli_verify_file_with_the_public_key_away_from_the_workspace(
    signed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export(signed, tmp_path / "a.jsonl")
    public = workspace_signer(tmp_path).key.public_hex
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    init_workspace(elsewhere)
    monkeypatch.chdir(elsewhere)
    code, output, _ = run("audit", "verify", "--file", str(tmp_path / "a.jsonl"), "--public-key", public)
    assert code == 0, output
    code, _, exc = run("audit", "verify", "--file", str(tmp_path / "a.jsonl"))
    assert code == 1
    assert "unverified" in str(exc)
    other = AuditKey.generate().public_hex
    code, _, exc = run("audit", "verify", "--file", str(tmp_path / "a.jsonl"), "--public-key", other)
    assert code == 1
    assert "signed by another key" in str(exc)


# -- the TUF repository ---------------------------------------------------------------------------------


def make_bundle(out: Path, version: int) -> Path:
    manifest = BundleManifest(
        model_name="pumpops-skab",
        model_version=version,
        group="north-sea",
        target=BundleTarget(
            id="x86-64-ipc",
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


def test_cli_publish_anchors_the_audit_head_in_tuf_and_verify_catches_a_cut_chain_with_it(
    signed: str, raw: Raw, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUMPOPS_DATABASE_URL", signed)
    assert run("keys", "init")[0] == 0
    make_bundle(tmp_path / "bundles", 1)
    code, output, _ = run("tuf", "publish", str(tmp_path / "bundles"))
    assert code == 0, output
    customs = [t.custom for t in open_repository(load_settings(tmp_path)).list_targets().values()]
    heads = {json.dumps(c["audit_head"], sort_keys=True) for c in customs if isinstance(c, dict)}
    assert len(heads) == 1
    head = json.loads(heads.pop())
    assert head["seq"] == 6  # the five entries and keys.init; release.published comes after it
    code, output, _ = run("audit", "verify")
    assert code == 0, output
    raw("DELETE FROM audit WHERE seq >= 5")
    (tmp_path / ANCHORS_FILE).unlink()  # the TUF repository alone must tell
    code, _, exc = run("audit", "verify")
    assert code == 1
    assert "entry seq 5" in str(exc)
    assert "truncated" in str(exc)
    assert "TUF repository" in str(exc)
