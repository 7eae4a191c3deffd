"""Signed, anchored audit trail on SQLite and PostgreSQL: a table of attacks by a database writer.

The attacker has write access to the database (plain SQL, as in issue 13 row
11) and knows the public encoding, but not the hub's audit key, which lives
in the workspace (``keys/audit/audit-key.pem``), nor the anchors file beside
it. Every attack must fail :func:`pumpops.audit.verify_trail` naming the first
bad sequence number and why; the honest chain and legacy entries must not.
"""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pumpops.audit import (
    ANCHORS_FILE,
    AUDIT_KEY_FILE,
    Anchor,
    AuditKey,
    AuditSigner,
    VerifyReport,
    chain_entry,
    create_audit_key,
    head_anchor,
    load_audit_key,
    read_anchors,
    sign_entry,
    verify_trail,
    workspace_key,
    workspace_signer,
)
from pumpops.errors import ConfigError, InputError, IntegrityError
from pumpops.store import TelemetryStore, open_store

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SECOND = 1_000_000

Raw = Callable[[str], None]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def signed(db_url: str, store: TelemetryStore, workspace: Path) -> Iterator[TelemetryStore]:
    """The hub's store: every append signed with the workspace's key and anchored."""
    with open_store(db_url, audit_signer=workspace_signer(workspace)) as opened:
        yield opened


def fill(store: TelemetryStore, first: int, last: int) -> None:
    for i in range(first, last + 1):
        store.append_audit("ann@hq", "model.registered", f"m/{i}", {"i": i}, time_us=T0 + i * SECOND)


def verify(store: TelemetryStore, workspace: Path) -> VerifyReport:
    """What ``pumpops audit verify`` does: the workspace key and the workspace anchors."""
    return verify_trail(
        store.audit_entries(), workspace_key(workspace), read_anchors(workspace / ANCHORS_FILE)
    )


def insert_sql(
    entry_seq: int, prev_hash: str, signature: str | None = None, *, actor: str = "mallory@x"
) -> str:
    entry = chain_entry(entry_seq, T0, actor, "model.promoted", "m/evil", {"forced": True}, prev_hash)
    sig = "NULL" if signature is None else f"'{signature}'"
    return (
        "INSERT INTO audit (seq, time_us, actor, action, subject, payload, prev_hash, hash, signature) "
        "VALUES "
        f"({entry.seq}, {entry.time_us}, '{entry.actor}', '{entry.action}', '{entry.subject}', "
        f"'{entry.payload_json}', '{entry.prev_hash}', '{entry.hash}', {sig})"
    )


def rehash_from(store: TelemetryStore, raw: Raw, seq: int, *, keep_signatures: bool) -> None:
    """Rewrite entry ``seq``'s actor and recompute every hash and link from there (a consistent rewrite)."""
    entries = store.audit_entries()
    prev = entries[seq - 2].hash if seq > 1 else "0" * 64
    for old in entries[seq - 1 :]:
        actor = "mallory@x" if old.seq == seq else old.actor
        new = chain_entry(old.seq, old.time_us, actor, old.action, old.subject, old.payload, prev)
        signature = f"'{old.signature}'" if keep_signatures and old.signature else "NULL"
        raw(
            f"UPDATE audit SET actor = '{actor}', prev_hash = '{prev}', hash = '{new.hash}', "
            f"signature = {signature} WHERE seq = {old.seq}"
        )
        prev = new.hash


# -- the key ------------------------------------------------------------------------------------


def test_audit_key_is_created_0600_in_a_0700_folder_and_loaded_again(workspace: Path) -> None:
    first = workspace_signer(workspace)
    path = workspace / AUDIT_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700  # keys/, created here too
    assert workspace_signer(workspace).key.key_id == first.key.key_id
    assert load_audit_key(path).public_hex == first.key.public_hex


def test_audit_key_readable_by_others_is_refused_with_the_fix(workspace: Path) -> None:
    workspace_signer(workspace)
    path = workspace / AUDIT_KEY_FILE
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"accessible by others \(mode 0644\).*chmod 600"):
        workspace_key(workspace)


def test_audit_key_file_that_is_not_an_ed25519_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit-key.pem"
    path.write_text("not a key")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not a PEM private key"):
        load_audit_key(path)


def test_audit_key_created_by_racing_processes_is_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-key.pem"
    found: list[str] = []

    def create() -> None:
        found.append(create_audit_key(path).key_id)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1
    assert found[0] == load_audit_key(path).key_id
    assert [p.name for p in path.parent.iterdir()] == ["audit-key.pem"]  # no temporary file left


def test_audit_public_key_hex_round_trip_and_bad_hex_refused() -> None:
    key = AuditKey.generate()
    public = AuditKey.from_public_hex(key.public_hex)
    assert public.key_id == key.key_id
    assert public.verify(b"x", key.sign(b"x"))
    with pytest.raises(ConfigError, match="only verify"):
        public.sign(b"x")
    with pytest.raises(ConfigError, match="64 hex digits"):
        AuditKey.from_public_hex("zz")


# -- the honest chain ------------------------------------------------------------------------------


def test_signed_store_signs_every_entry_and_anchors_each_head(
    signed: TelemetryStore, workspace: Path
) -> None:
    fill(signed, 1, 4)
    entries = signed.audit_entries()
    key = workspace_key(workspace)
    assert key is not None
    assert all(e.signature and e.signature.startswith(key.key_id + ":") for e in entries)
    anchors = read_anchors(workspace / ANCHORS_FILE)
    assert [(a.seq, a.hash, a.signed_from) for a in anchors] == [(e.seq, e.hash, 1) for e in entries]
    assert stat.S_IMODE((workspace / ANCHORS_FILE).stat().st_mode) == 0o600
    report = verify(signed, workspace)
    assert (report.ok, report.signed, report.legacy, report.anchors) == (True, 4, 0, 4), report.summary()
    assert f"4 signed by audit key {key.key_id}" in report.summary()


def test_legacy_unsigned_entries_before_the_first_signed_are_reported_not_failed(
    store: TelemetryStore, signed: TelemetryStore, workspace: Path
) -> None:
    fill(store, 1, 2)  # written before the hub had an audit key (revision 0007 and earlier)
    fill(signed, 3, 5)
    report = verify(signed, workspace)
    assert report.ok, report.summary()
    assert (report.signed, report.legacy) == (3, 2)
    assert "2 unsigned legacy" in report.summary()
    assert read_anchors(workspace / ANCHORS_FILE)[0].signed_from == 3


def test_concurrent_signed_appenders_keep_one_chain_all_signed_and_anchored(
    db_url: str, store: TelemetryStore, workspace: Path
) -> None:
    signer = workspace_signer(workspace)

    def writer(n: int) -> None:
        with open_store(db_url, audit_signer=signer) as mine:
            for i in range(10):
                mine.append_audit(f"w{n}", "x.y", f"s/{i}", {"i": i})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = verify(store, workspace)
    assert (report.ok, report.count, report.signed, report.anchors) == (True, 40, 40, 40), report.summary()


# -- attacks by someone who writes the database --------------------------------------------------


def _append_forged_unsigned(store: TelemetryStore, raw: Raw, workspace: Path) -> None:
    raw(insert_sql(6, store.audit_entries()[-1].hash))  # issue 13 row 11: correct link and hash


def _append_signed_by_another_key(store: TelemetryStore, raw: Raw, workspace: Path) -> None:
    forged = chain_entry(
        6, T0, "mallory@x", "model.promoted", "m/evil", {"forced": True}, store.audit_entries()[-1].hash
    )
    raw(insert_sql(6, forged.prev_hash, sign_entry(AuditKey.generate(), forged).signature))


def _append_replaying_a_signature(store: TelemetryStore, raw: Raw, workspace: Path) -> None:
    last = store.audit_entries()[-1]
    assert last.signature is not None
    raw(insert_sql(6, last.hash, last.signature))  # another entry's valid signature, replayed


def _truncate_tail(store: TelemetryStore, raw: Raw, workspace: Path) -> None:
    raw("DELETE FROM audit WHERE seq >= 4")


def _rehash_tail_keeping_signatures(store: TelemetryStore, raw: Raw, workspace: Path) -> None:
    rehash_from(store, raw, 3, keep_signatures=True)


def _rehash_tail_dropping_signatures(store: TelemetryStore, raw: Raw, workspace: Path) -> None:
    rehash_from(store, raw, 3, keep_signatures=False)


def _strip_every_signature(store: TelemetryStore, raw: Raw, workspace: Path) -> None:
    raw("UPDATE audit SET signature = NULL")


def _edit_payload(store: TelemetryStore, raw: Raw, workspace: Path) -> None:
    entry = store.audit_entries()[2]
    edited = chain_entry(
        3, entry.time_us, entry.actor, entry.action, entry.subject, {"i": 99}, entry.prev_hash
    )
    raw(f"""UPDATE audit SET payload = '{{"i":99}}', hash = '{edited.hash}' WHERE seq = 3""")


def _cut_then_append_unsigned(store: TelemetryStore, raw: Raw, workspace: Path) -> None:
    raw("DELETE FROM audit WHERE seq = 5")
    raw(insert_sql(5, store.audit_entries()[-1].hash))


def _delete_everything(store: TelemetryStore, raw: Raw, workspace: Path) -> None:
    raw("DELETE FROM audit")


def _restore_older_backup(store: TelemetryStore, raw: Raw, workspace: Path) -> None:
    raw("DELETE FROM audit WHERE seq > 2")  # the database as it was two entries in, signatures intact


# (name, attack, first bad seq, kind, words of the reason)
ATTACKS = [
    ("row-11-append-unsigned", _append_forged_unsigned, 6, "unsigned", "written without the hub's audit key"),
    ("append-signed-by-another-key", _append_signed_by_another_key, 6, "forged", "signed by another key"),
    (
        "append-replaying-a-signature",
        _append_replaying_a_signature,
        6,
        "forged",
        "does not match",
    ),
    ("truncate-tail", _truncate_tail, 4, "truncated", "entries 4..5 were cut off"),
    ("rehash-tail-keep-signatures", _rehash_tail_keeping_signatures, 3, "forged", "does not match"),
    (
        "rehash-tail-drop-signatures",
        _rehash_tail_dropping_signatures,
        3,
        "unsigned",
        "entry 1 before it is signed",
    ),
    ("strip-every-signature", _strip_every_signature, 1, "unsigned", "every entry from seq 1 on was signed"),
    ("edit-payload-and-rehash-one", _edit_payload, 3, "modified", "recomputed"),
    ("cut-then-append-unsigned", _cut_then_append_unsigned, 5, "unsigned", "without the hub's audit key"),
    ("delete-everything", _delete_everything, 1, "truncated", "entries 1..5 were cut off"),
    ("restore-an-older-backup", _restore_older_backup, 3, "truncated", "entries 3..5 were cut off"),
]


@pytest.mark.parametrize(
    ("attack", "bad_seq", "kind", "reason"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS]
)
def test_attack_by_a_database_writer_fails_verify_naming_seq_and_reason(
    signed: TelemetryStore,
    raw: Raw,
    workspace: Path,
    attack: Callable[[TelemetryStore, Raw, Path], None],
    bad_seq: int,
    kind: str,
    reason: str,
) -> None:
    fill(signed, 1, 5)
    assert verify(signed, workspace).ok
    attack(signed, raw, workspace)
    report = verify(signed, workspace)
    assert not report.ok
    assert (report.bad_seq, report.kind) == (bad_seq, kind), report.summary()
    assert reason in report.detail, report.summary()
    assert report.summary().startswith(f"TAMPERED: entry seq {bad_seq} ")


def test_rehashed_legacy_tail_fails_against_an_anchor_of_it(
    store: TelemetryStore, raw: Raw, workspace: Path
) -> None:
    fill(store, 1, 5)  # legacy entries: no signature can reveal a consistent rewrite
    signer = workspace_signer(workspace)
    from pumpops.audit import head_anchor

    signer.record(head_anchor(store.audit_entries(), signer.key, time_us=T0))
    rehash_from(store, raw, 2, keep_signatures=False)
    report = verify(store, workspace)
    assert (report.ok, report.kind, report.bad_seq) == (False, "rehashed", 5), report.summary()
    assert "rewritten at or before this entry" in report.detail


def test_writer_without_the_key_after_signed_entries_is_flagged(
    db_url: str, signed: TelemetryStore, workspace: Path
) -> None:
    fill(signed, 1, 2)
    with open_store(db_url) as keyless:  # a process not wired with the workspace signer
        keyless.append_audit("script@box", "model.promoted", "m/1", {})
    report = verify(signed, workspace)
    assert (report.kind, report.bad_seq) == ("unsigned", 3), report.summary()


def test_signed_entries_without_a_key_at_hand_are_unverified_not_ok(signed: TelemetryStore) -> None:
    fill(signed, 1, 2)
    report = verify_trail(signed.audit_entries(), None)
    assert (report.ok, report.kind, report.bad_seq) == (False, "unverified", 1)
    assert "no audit key is at hand" in report.detail


def test_verify_with_another_workspace_key_fails_as_forged(signed: TelemetryStore, tmp_path: Path) -> None:
    fill(signed, 1, 2)
    report = verify_trail(signed.audit_entries(), workspace_signer(tmp_path / "other").key)
    assert (report.kind, report.bad_seq) == ("forged", 1)
    assert "signed by another key" in report.detail


# -- the anchors file ----------------------------------------------------------------------------


def test_anchors_file_with_an_edited_head_fails_as_forged(signed: TelemetryStore, workspace: Path) -> None:
    fill(signed, 1, 3)
    path = workspace / ANCHORS_FILE
    lines = path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["seq"] = 9
    lines[1] = json.dumps(edited)
    path.write_text("\n".join(lines) + "\n")
    report = verify(signed, workspace)
    assert (report.kind, report.bad_seq) == ("forged", 9), report.summary()  # the seq the edited head claims
    assert "does not match its signature" in report.detail


def test_anchors_file_with_a_line_that_is_not_a_head_is_refused(
    signed: TelemetryStore, workspace: Path
) -> None:
    fill(signed, 1, 1)
    with (workspace / ANCHORS_FILE).open("a") as out:
        out.write('{"seq": 1}\n')
    with pytest.raises(IntegrityError, match="line 2 is not a signed audit head"):
        read_anchors(workspace / ANCHORS_FILE)


def test_anchors_file_that_cannot_be_written_raises_after_the_signed_entry_is_stored(
    db_url: str, store: TelemetryStore, tmp_path: Path
) -> None:
    blocked = tmp_path / "anchors.jsonl"
    blocked.mkdir()  # a folder where the file should be: open() fails, even as root
    signer = AuditSigner(AuditKey.generate(), blocked)
    with open_store(db_url, audit_signer=signer) as opened, pytest.raises(ConfigError, match="anchors file"):
        opened.append_audit("ann", "x.y", "s")
    entries = store.audit_entries()
    assert len(entries) == 1
    assert verify_trail(entries, signer.key).ok


def test_signer_key_from_pem_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "k.pem"
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        load_audit_key(path)


# -- signed heads ------------------------------------------------------------------------------------


def test_head_anchor_never_vouches_for_entries_that_do_not_verify(
    signed: TelemetryStore, raw: Raw, workspace: Path
) -> None:
    fill(signed, 1, 3)
    raw(insert_sql(4, signed.audit_entries()[-1].hash))  # unsigned, after signed ones
    key = workspace_key(workspace)
    assert key is not None
    anchor = head_anchor(signed.audit_entries(), key, time_us=T0)
    assert (anchor.seq, anchor.signed_from) == (3, 1)
    assert anchor.problem(key) is None


def test_head_anchor_of_an_empty_chain_is_seq_0_and_checks_nothing() -> None:
    key = AuditKey.generate()
    anchor = head_anchor([], key, time_us=T0)
    assert (anchor.seq, anchor.hash, anchor.signed_from) == (0, "0" * 64, None)
    assert verify_trail([], key, [anchor]).ok


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([1, 2], "not a signed audit head"),
        ({"seq": 1}, "not a signed audit head"),
        (
            {"seq": -1, "hash": "h", "signed_from": None, "time_us": 0, "key_id": "k", "signature": "s"},
            "mistyped",
        ),
        (
            {"seq": 1, "hash": 5, "signed_from": None, "time_us": 0, "key_id": "k", "signature": "s"},
            "mistyped",
        ),
        (
            {"seq": True, "hash": "h", "signed_from": None, "time_us": 0, "key_id": "k", "signature": "s"},
            "mistyped",
        ),
        (
            {"seq": 1, "hash": "h", "signed_from": "1", "time_us": 0, "key_id": "k", "signature": "s"},
            "mistyped",
        ),
    ],
)
def test_anchor_from_bad_input_is_refused_with_where_it_came_from(data: object, words: str) -> None:
    with pytest.raises(InputError, match=rf"somewhere: .*{words}"):
        Anchor.from_dict(data, "somewhere")


def test_anchor_with_a_signature_that_is_not_hex_is_forged_not_a_crash() -> None:
    key = AuditKey.generate()
    anchor = replace(head_anchor([], key, time_us=T0), signature="not hex", where="x")
    assert anchor.problem(key) == "the head in x does not match its signature (edited)"


def test_entry_signature_without_a_colon_is_forged_not_a_crash(
    signed: TelemetryStore, raw: Raw, workspace: Path
) -> None:
    fill(signed, 1, 2)
    raw("UPDATE audit SET signature = 'garbage' WHERE seq = 2")
    report = verify(signed, workspace)
    assert (report.kind, report.bad_seq) == ("forged", 2)
    assert "signed by another key ('garbage'" in report.detail
