"""The pure audit chain: canonical encoding, hashing, and every kind of tampering as a scenario table."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable

import pytest

from pumpops.audit import (
    GENESIS_HASH,
    AuditEntry,
    canonical_json,
    chain_entry,
    entry_hash,
    verify_chain,
)
from pumpops.errors import ConfigError, InputError, IntegrityError

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def make_chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        entry = chain_entry(
            seq, T0 + seq, "ann@hq", "model.promoted", f"m/{seq}", {"n": seq, "f1": 0.5 + seq / 100}, prev
        )
        entries.append(entry)
        prev = entry.hash
    return entries


def rehash(entry: AuditEntry) -> AuditEntry:
    """An entry whose hash was recomputed after a change (a forger who knows the encoding)."""
    return chain_entry(
        entry.seq, entry.time_us, entry.actor, entry.action, entry.subject, entry.payload, entry.prev_hash
    )


def forged(seq: int, prev_hash: str) -> AuditEntry:
    return chain_entry(seq, T0, "mallory@x", "model.promoted", "m/evil", {"forced": True}, prev_hash)


# -- encoding ----------------------------------------------------------------------------------


def test_entry_hash_is_sha256_of_sorted_compact_json() -> None:
    entry = chain_entry(3, T0, "ann@hq", "model.promoted", "m/ü", {"b": [1, 2.5], "a": None}, "ab" * 32)
    fields = {
        "seq": 3,
        "time_us": T0,
        "actor": "ann@hq",
        "action": "model.promoted",
        "subject": "m/ü",
        "payload": {"a": None, "b": [1, 2.5]},
        "prev_hash": "ab" * 32,
    }
    encoded = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert entry.hash == hashlib.sha256(encoded).hexdigest()
    assert entry.payload_json == '{"a":null,"b":[1,2.5]}'


def test_entry_to_json_round_trips_through_from_json() -> None:
    entry = make_chain(1)[0]
    line = entry.to_json()
    assert json.loads(line)["hash"] == entry.hash
    assert AuditEntry.from_json(line) == entry


@pytest.mark.parametrize(
    "payload",
    [{"x": float("nan")}, {1: "int key"}, {"s": {1, 2}}, {"bad": "\ud800"}],
    ids=["nan", "int-key", "set", "lone-surrogate"],
)
def test_canonical_json_non_json_payload_raises_input_error(payload: dict[object, object]) -> None:
    with pytest.raises(InputError):
        canonical_json(payload)


@pytest.mark.parametrize("actor", ["", "   "])
def test_chain_entry_empty_actor_raises_config_error(actor: str) -> None:
    with pytest.raises(ConfigError, match="actor"):
        chain_entry(1, T0, actor, "a", "s", {}, GENESIS_HASH)


def test_chain_entry_empty_subject_raises_input_error() -> None:
    with pytest.raises(InputError, match="subject"):
        chain_entry(1, T0, "ann", "a", "", {}, GENESIS_HASH)


def test_entry_payload_not_an_object_raises_integrity_error() -> None:
    entry = dataclasses.replace(make_chain(1)[0], payload_json="[1")
    with pytest.raises(IntegrityError):
        _ = entry.payload


@pytest.mark.parametrize("line", ["{", "[]", '{"seq": 1}'])
def test_entry_from_json_malformed_line_raises_input_error(line: str) -> None:
    with pytest.raises(InputError):
        AuditEntry.from_json(line)


# -- verification: scenario table ----------------------------------------------------------------

Tamper = Callable[[list[AuditEntry]], list[AuditEntry]]


def _modify_payload(c: list[AuditEntry]) -> list[AuditEntry]:
    c[2] = dataclasses.replace(c[2], payload_json='{"f1":0.99,"n":3}')
    return c


def _modify_actor_and_rehash(c: list[AuditEntry]) -> list[AuditEntry]:
    c[2] = rehash(dataclasses.replace(c[2], actor="mallory@x"))
    return c


def _delete_middle(c: list[AuditEntry]) -> list[AuditEntry]:
    del c[2]
    return c


def _delete_first(c: list[AuditEntry]) -> list[AuditEntry]:
    del c[0]
    return c


def _delete_and_renumber(c: list[AuditEntry]) -> list[AuditEntry]:
    del c[2]
    return [*c[:2], *(dataclasses.replace(e, seq=e.seq - 1) for e in c[2:])]


def _insert_forged_with_renumbering(c: list[AuditEntry]) -> list[AuditEntry]:
    tail = [dataclasses.replace(e, seq=e.seq + 1) for e in c[3:]]
    return [*c[:3], forged(4, c[2].hash), *tail]


def _insert_forged_at_end_linking_back(c: list[AuditEntry]) -> list[AuditEntry]:
    return [*c, forged(6, c[1].hash)]


def _insert_duplicate_seq(c: list[AuditEntry]) -> list[AuditEntry]:
    return [*c[:3], forged(3, c[1].hash), *c[3:]]


def _insert_duplicate_seq_before_original(c: list[AuditEntry]) -> list[AuditEntry]:
    return [*c[:2], forged(3, c[1].hash), *c[2:]]


def _swap_seq(c: list[AuditEntry]) -> list[AuditEntry]:
    # What a database UPDATE swapping two seq values looks like when read by seq.
    a, b = c[2], c[3]
    return [*c[:2], dataclasses.replace(b, seq=a.seq), dataclasses.replace(a, seq=b.seq), *c[4:]]


def _swap_lines(c: list[AuditEntry]) -> list[AuditEntry]:
    # What moving lines of an export file looks like.
    c[2], c[3] = c[3], c[2]
    return c


def _seq_goes_back(c: list[AuditEntry]) -> list[AuditEntry]:
    return [*c[:2], c[4], c[2], c[3]]


# (name, tamper, bad seq reported, kind)
SCENARIOS: list[tuple[str, Tamper, int, str]] = [
    ("modify-payload", _modify_payload, 3, "modified"),
    ("modify-and-rehash", _modify_actor_and_rehash, 3, "modified"),
    ("delete-middle", _delete_middle, 4, "deleted"),
    ("delete-first", _delete_first, 2, "deleted"),
    ("delete-and-renumber", _delete_and_renumber, 3, "deleted"),
    ("insert-with-renumbering", _insert_forged_with_renumbering, 4, "inserted"),
    ("insert-at-end-linking-back", _insert_forged_at_end_linking_back, 6, "inserted"),
    ("insert-duplicate-seq", _insert_duplicate_seq, 3, "inserted"),
    ("insert-duplicate-seq-first", _insert_duplicate_seq_before_original, 3, "inserted"),
    ("reorder-swap-seq", _swap_seq, 3, "reordered"),
    ("reorder-swap-lines", _swap_lines, 4, "reordered"),
    ("reorder-seq-goes-back", _seq_goes_back, 5, "reordered"),
]


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "kind"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS]
)
def test_verify_chain_tampering_names_first_bad_entry_and_kind(
    tamper: Tamper, bad_seq: int, kind: str
) -> None:
    report = verify_chain(tamper(make_chain(5)))
    assert not report.ok
    assert (report.bad_seq, report.kind) == (bad_seq, kind), report.detail
    assert "TAMPERED" in report.summary()


def test_verify_chain_forger_is_not_blamed_on_original() -> None:
    # A duplicate placed first is the intruder, not the original that follows it.
    chain = make_chain(5)
    report = verify_chain(_insert_duplicate_seq_before_original(list(chain)))
    assert report.bad_index == 2
    assert report.bad_index is not None
    assert _insert_duplicate_seq_before_original(list(chain))[report.bad_index].actor == "mallory@x"


@pytest.mark.parametrize("n", [0, 1, 7])
def test_verify_chain_intact_is_ok_with_count_and_head(n: int) -> None:
    chain = make_chain(n)
    report = verify_chain(chain)
    assert report.ok, report.detail
    assert report.count == n
    assert report.head_hash == (chain[-1].hash if chain else GENESIS_HASH)
    assert report.summary().startswith(f"OK: {n} entries")


def test_verify_chain_segment_without_anchor_is_ok() -> None:
    chain = make_chain(6)
    assert verify_chain(chain[3:], first_seq=None, first_prev_hash=None).ok
    assert verify_chain(chain[3:]).kind == "deleted"


def test_verify_chain_truncated_tail_detected_with_expected_head() -> None:
    chain = make_chain(5)
    assert verify_chain(chain[:4]).ok  # a chain alone cannot show a cut tail
    report = verify_chain(chain[:4], expected_head=chain[4].hash)
    assert report.kind == "deleted"
    assert verify_chain(chain, expected_head=chain[2].hash).ok


def test_entry_hash_changes_with_every_field() -> None:
    base = {
        "seq": 1,
        "time_us": T0,
        "actor": "a",
        "action": "b",
        "subject": "c",
        "payload_json": "{}",
        "prev_hash": GENESIS_HASH,
    }
    changed = {
        "seq": 2,
        "time_us": T0 + 1,
        "actor": "a2",
        "action": "b2",
        "subject": "c2",
        "payload_json": '{"x":1}',
        "prev_hash": "1" * 64,
    }
    digests = {entry_hash(**base)}  # type: ignore[arg-type]
    for key, value in changed.items():
        digests.add(entry_hash(**{**base, key: value}))  # type: ignore[arg-type]
    assert len(digests) == 1 + len(changed)
