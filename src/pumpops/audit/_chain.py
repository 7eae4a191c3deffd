r"""The audit chain without I/O: entries, their canonical encoding, hashing and verification.

Canonical encoding (what an auditor re-implements)
--------------------------------------------------
An entry's hash is the lowercase hex SHA-256 of the UTF-8 bytes of one JSON
object holding every field of the entry except ``hash``::

    {"action":A,"actor":B,"payload":P,"prev_hash":H,"seq":N,"subject":S,"time_us":T}

- keys in exactly this order (sorted by code point), no whitespace anywhere
  (separators ``,`` and ``:``), no trailing newline;
- ``seq`` and ``time_us`` are JSON integers in decimal without sign for
  positive values, leading zeros or exponent (``time_us``: microseconds since
  the Unix epoch, UTC; ``seq`` starts at 1 and grows by 1);
- ``action``, ``actor``, ``subject`` and ``prev_hash`` are JSON strings;
  characters outside ASCII are written as themselves (UTF-8), not as
  ``\\uXXXX`` escapes; ``"`` ``\\`` and control characters are escaped as
  Python's ``json.dumps(..., ensure_ascii=False)`` does (``\\n``, ``\\t``,
  ``\\u0001``, ...);
- ``P`` is the payload, a JSON object encoded by the same rules, recursively:
  keys sorted by code point, no whitespace, integers in decimal, floats as
  Python's shortest round-trip ``repr`` (``0.1``, ``1e-07``, ``1e+16``; NaN
  and infinities are refused), ``true``/``false``/``null``;
- ``prev_hash`` is the previous entry's ``hash``; the first entry's is 64
  zeros (:data:`GENESIS_HASH`).

In Python this is ``json.dumps(fields, sort_keys=True, separators=(",", ":"),
ensure_ascii=False, allow_nan=False).encode("utf-8")``. The store keeps the
payload as its canonical text and the hash is computed with that text
embedded byte for byte, so any change to the stored payload shows.

Verification (:func:`verify_chain`) names the first bad entry and one kind:
``modified`` (its hash does not match its content), ``deleted`` (a sequence
number is missing), ``inserted`` (an entry that does not belong between its
neighbours: a repeated sequence number, or an entry whose ``prev_hash`` points
back past its predecessor), ``reordered`` (sequence numbers out of order, or an
intact entry moved to another sequence number). May import: errors, hashlib, json.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pumpops.errors import ConfigError, InputError, IntegrityError

#: ``prev_hash`` of the first entry of a chain.
GENESIS_HASH = "0" * 64

#: What verification found wrong with the first bad entry: the chain's kinds
#: (:func:`verify_chain`), then the signatures' and anchors' (:func:`~pumpops.audit.verify_trail`):
#: ``unsigned`` (no signature where one is due), ``forged`` (a signature that is
#: bad or by another key), ``unverified`` (signed, but no key at hand to check),
#: ``truncated`` (shorter than an anchor), ``rehashed`` (differs from an anchor).
TamperKind = Literal[
    "modified",
    "deleted",
    "inserted",
    "reordered",
    "unsigned",
    "forged",
    "unverified",
    "truncated",
    "rehashed",
]

# How many sequence numbers are tried when looking for the one an entry was
# hashed with (only for the one bad entry a verification stops at).
_MAX_SEQ_SEARCH = 1_000_000


def canonical_json(value: Any) -> str:
    """Encode a JSON value canonically (sorted keys, no whitespace, UTF-8 text, finite numbers).

    Raises:
        InputError: the value is not JSON (a non-string key, NaN, a set, ...)
            or does not survive a round trip through JSON unchanged.

    >>> canonical_json({"b": [1, 2.5, None], "a": "ü"})
    '{"a":"ü","b":[1,2.5,null]}'
    """
    _check_keys(value)
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
        again = json.dumps(
            json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InputError(f"audit payload is not canonical JSON: {exc}") from exc
    if again != text:
        raise InputError(
            f"audit payload changes in a JSON round trip (use string keys and JSON types only): {text[:200]}"
        )
    return text


def _check_keys(value: Any) -> None:
    """Refuse non-string object keys, which JSON would silently turn into strings."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            bad = [key for key in item if not isinstance(key, str)]
            if bad:
                raise InputError(f"audit payload keys must be strings, not {bad[0]!r}")
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One link of the audit chain.

    Attributes:
        seq: sequence number, 1 for the first entry, then +1 each.
        time_us: when it was appended, microseconds since the Unix epoch (UTC).
            Informative: order is given by ``seq`` (writers' clocks may differ).
        actor: who did it (``user@host``, later an API token's owner).
        action: what was done, dotted (``model.promoted``).
        subject: what it was done to (``pump-model/7``, ``device/p-1``).
        payload_json: details, the canonical JSON text of an object.
        prev_hash: the previous entry's ``hash`` (:data:`GENESIS_HASH` for seq 1).
        hash: SHA-256 hex of :func:`canonical_bytes` of this entry.
        signature: ``<key id>:<Ed25519 signature hex>`` by the hub's audit key
            over the canonical bytes (:mod:`pumpops.audit._sign`), None on
            entries written without a key (legacy). Not part of ``hash``.
    """

    seq: int
    time_us: int
    actor: str
    action: str
    subject: str
    payload_json: str
    prev_hash: str
    hash: str
    signature: str | None = None

    @property
    def payload(self) -> dict[str, Any]:
        """The payload as a dict (parsed from :attr:`payload_json`).

        Raises:
            IntegrityError: the stored payload is not a JSON object.
        """
        try:
            value = json.loads(self.payload_json)
        except ValueError as exc:
            raise IntegrityError(f"audit entry {self.seq}: payload is not JSON") from exc
        if not isinstance(value, dict):
            raise IntegrityError(f"audit entry {self.seq}: payload is not a JSON object")
        return value

    def to_json(self) -> str:
        """One export line: the canonical encoding plus ``hash`` (and ``signature`` if any), keys sorted.

        >>> entry = chain_entry(1, 5, "ann@hq", "x.y", "s", {}, GENESIS_HASH)
        >>> entry.to_json().startswith('{"action":"x.y","actor":"ann@hq","hash":"')
        True
        """
        return (
            f'{{"action":{_string(self.action)},"actor":{_string(self.actor)},'
            f'"hash":{_string(self.hash)},"payload":{self.payload_json},'
            f'"prev_hash":{_string(self.prev_hash)},"seq":{self.seq},'
            + ("" if self.signature is None else f'"signature":{_string(self.signature)},')
            + f'"subject":{_string(self.subject)},"time_us":{self.time_us}}}'
        )

    @classmethod
    def from_json(cls, line: str) -> AuditEntry:
        """Parse one export line (see :meth:`to_json`).

        Raises:
            InputError: the line is not an export line of an audit entry.
        """
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise InputError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError("not a JSON object")
        expected = {"seq", "time_us", "actor", "action", "subject", "payload", "prev_hash", "hash"}
        if set(data) - {"signature"} != expected:
            raise InputError(f"fields must be exactly {sorted(expected)} (and signature), got {sorted(data)}")
        if not isinstance(data.get("signature", ""), str):
            raise InputError("signature must be a string")
        for key in ("seq", "time_us"):
            if type(data[key]) is not int:
                raise InputError(f"{key} must be an integer")
        for key in ("actor", "action", "subject", "prev_hash", "hash"):
            if not isinstance(data[key], str):
                raise InputError(f"{key} must be a string")
        if not isinstance(data["payload"], dict):
            raise InputError("payload must be a JSON object")
        return cls(
            seq=data["seq"],
            time_us=data["time_us"],
            actor=data["actor"],
            action=data["action"],
            subject=data["subject"],
            payload_json=canonical_json(data["payload"]),
            prev_hash=data["prev_hash"],
            hash=data["hash"],
            signature=data.get("signature"),
        )


def canonical_bytes(
    *, seq: int, time_us: int, actor: str, action: str, subject: str, payload_json: str, prev_hash: str
) -> bytes:
    """The canonical encoding of an entry's fields (all but ``hash``); see the module docstring.

    ``payload_json`` is embedded as it is: pass canonical text (:func:`canonical_json`).

    >>> fields = {"actor": "ann", "action": "m.promoted", "subject": "m/3", "payload_json": '{"g":1}'}
    >>> canonical_bytes(seq=7, time_us=5, prev_hash="00", **fields).decode()
    '{"action":"m.promoted","actor":"ann","payload":{"g":1},"prev_hash":"00","seq":7,"subject":"m/3","time_us":5}'
    """
    text = (
        f'{{"action":{_string(action)},"actor":{_string(actor)},"payload":{payload_json},'
        f'"prev_hash":{_string(prev_hash)},"seq":{int(seq)},"subject":{_string(subject)},'
        f'"time_us":{int(time_us)}}}'
    )
    return text.encode("utf-8", errors="surrogatepass")


def entry_hash(
    *, seq: int, time_us: int, actor: str, action: str, subject: str, payload_json: str, prev_hash: str
) -> str:
    """SHA-256 hex of :func:`canonical_bytes`: the ``hash`` an entry with these fields must carry.

    >>> entry_hash(seq=1, time_us=0, actor="a", action="b", subject="c", payload_json="{}",
    ...            prev_hash=GENESIS_HASH)[:16]
    'ad68fbe0ad5bf193'
    """
    encoded = canonical_bytes(
        seq=seq,
        time_us=time_us,
        actor=actor,
        action=action,
        subject=subject,
        payload_json=payload_json,
        prev_hash=prev_hash,
    )
    return hashlib.sha256(encoded).hexdigest()


def _content_hash(entry: AuditEntry, seq: int | None = None) -> str:
    return entry_hash(
        seq=entry.seq if seq is None else seq,
        time_us=entry.time_us,
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        payload_json=entry.payload_json,
        prev_hash=entry.prev_hash,
    )


def check_fields(actor: str, action: str, subject: str) -> None:
    """Refuse entries nobody could attribute or find.

    Raises:
        ConfigError: ``actor`` is empty or blank (it comes from settings or a flag).
        InputError: ``action`` or ``subject`` is empty or blank.
    """
    if not isinstance(actor, str) or not actor.strip():
        raise ConfigError(
            "audit actor must not be empty: set `actor` in pumpops.toml, PUMPOPS_ACTOR or --actor"
        )
    for name, value in (("action", action), ("subject", subject)):
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"audit {name} must not be empty")
    for name, value in (("actor", actor), ("action", action), ("subject", subject)):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(f"audit {name} is not valid Unicode text: {exc}") from exc


def chain_entry(  # noqa: PLR0917 - the fields of an entry, in their documented order
    seq: int,
    time_us: int,
    actor: str,
    action: str,
    subject: str,
    payload: Mapping[str, Any],
    prev_hash: str,
) -> AuditEntry:
    """Build the entry that follows ``prev_hash`` at ``seq``, hash included.

    Raises:
        ConfigError: ``actor`` is empty.
        InputError: ``action`` or ``subject`` is empty, ``payload`` is not a
            JSON object, or ``seq``/``time_us`` are not non-negative integers.

    >>> first = chain_entry(1, 10, "ann@hq", "dataset.snapshot", "ds/abc", {"rows": 3}, GENESIS_HASH)
    >>> second = chain_entry(2, 20, "ann@hq", "run.trained", "run/1", {}, first.hash)
    >>> verify_chain([first, second]).ok
    True
    """
    check_fields(actor, action, subject)
    if not isinstance(payload, Mapping):
        raise InputError(f"audit payload must be a JSON object (a mapping), not {type(payload).__name__}")
    for name, number in (("seq", seq), ("time_us", time_us)):
        if type(number) is not int or number < 0:
            raise InputError(f"audit {name} must be a non-negative integer, not {number!r}")
    payload_json = canonical_json(dict(payload))
    digest = entry_hash(
        seq=seq,
        time_us=time_us,
        actor=actor,
        action=action,
        subject=subject,
        payload_json=payload_json,
        prev_hash=prev_hash,
    )
    return AuditEntry(seq, time_us, actor, action, subject, payload_json, prev_hash, digest)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of :func:`verify_chain`.

    Attributes:
        count: entries checked.
        head_seq: sequence number of the last entry (0 for an empty chain).
        head_hash: hash of the last entry (:data:`GENESIS_HASH` for an empty chain).
        bad_seq: sequence number of the first bad entry, as recorded (None if ok).
        bad_index: its position in the list checked, from 0 (None if ok).
        kind: what is wrong with it (None if ok).
        detail: a sentence for people.
        signed: entries whose signature was checked (0 from :func:`verify_chain`).
        legacy: unsigned entries before the first signed one (written before the audit key).
        anchors: signed heads checked against the chain.
        key_id: the audit key the signatures were checked with, if any.
    """

    count: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    bad_index: int | None = None
    kind: TamperKind | None = None
    detail: str = ""
    signed: int = 0
    legacy: int = 0
    anchors: int = 0
    key_id: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the chain is intact."""
        return self.kind is None

    def summary(self) -> str:
        """One line for people: ``OK ...`` or ``TAMPERED ...``."""
        if self.ok:
            text = f"OK: {self.count} entries, head seq {self.head_seq} hash {self.head_hash}"
            if self.key_id is not None:
                text += f"; {self.signed} signed by audit key {self.key_id}"
            if self.legacy:
                text += f"; {self.legacy} unsigned legacy (written before the audit key, not checked by it)"
            if self.anchors:
                text += f"; {self.anchors} anchor(s) matched"
            return text
        return f"TAMPERED: entry seq {self.bad_seq} (position {self.bad_index}) {self.kind}: {self.detail}"


def _original_seq(entry: AuditEntry, entries: Sequence[AuditEntry]) -> int | None:
    """The sequence number an entry whose hash no longer matches was hashed with, if any.

    First the one its ``prev_hash`` link implies (its parent's original
    number + 1, following links back), then every number up to a bound.
    """
    by_hash = {e.hash: e for e in entries}
    depth, cursor, seen = 0, entry, set()
    while cursor.prev_hash in by_hash and cursor.prev_hash not in seen:
        seen.add(cursor.prev_hash)
        cursor = by_hash[cursor.prev_hash]
        depth += 1
    if cursor.prev_hash == GENESIS_HASH:
        implied = depth + 1
        if implied != entry.seq and _content_hash(entry, implied) == entry.hash:
            return implied
    top = min(max((e.seq for e in entries), default=0) + len(entries) + 1, _MAX_SEQ_SEARCH)
    for seq in range(1, top + 1):
        if seq != entry.seq and _content_hash(entry, seq) == entry.hash:
            return seq
    return None


def verify_chain(
    entries: Sequence[AuditEntry],
    *,
    first_seq: int | None = 1,
    first_prev_hash: str | None = GENESIS_HASH,
    expected_head: str | None = None,
) -> VerifyReport:
    """Walk a chain in the order given and report the first entry that was tampered with.

    Args:
        entries: the chain, in the order it was read (the store reads by
            ``seq``; an export file in line order).
        first_seq: the sequence number the first entry must have; None
            accepts any (a segment of a chain, e.g. an export ``--since``).
        first_prev_hash: the ``prev_hash`` the first entry must have; None
            accepts any (a segment whose predecessor is not at hand).
        expected_head: a head hash recorded elsewhere earlier: it must be an
            entry of the chain, else the chain was truncated or rewritten.

    Returns:
        The report; ``report.ok`` is False at the first bad entry.

    A chain rewritten as a whole from some entry on, with every hash
    recomputed, verifies: only a head hash kept elsewhere (``expected_head``)
    or a signature reveals that (see ADR 0006).

    >>> a = chain_entry(1, 10, "ann@hq", "run.trained", "run/1", {"f1": 0.9}, GENESIS_HASH)
    >>> b = chain_entry(2, 20, "ann@hq", "model.registered", "m/1", {}, a.hash)
    >>> verify_chain([a, b]).summary()[:23]
    'OK: 2 entries, head seq'
    >>> import dataclasses
    >>> forged = dataclasses.replace(a, payload_json='{"f1":0.99}')
    >>> report = verify_chain([forged, b])
    >>> report.bad_seq, report.kind
    (1, 'modified')
    >>> verify_chain([b]).kind
    'deleted'
    """
    by_hash = {e.hash: i for i, e in enumerate(entries)}
    seqs = {e.seq for e in entries}
    prev: AuditEntry | None = None
    for i, entry in enumerate(entries):
        found = _judge(entries, i, prev, by_hash, seqs, first_seq, first_prev_hash)
        if found is not None:
            index, kind, detail = found
            return _report(entries, index, kind, detail)
        prev = entry
    if expected_head is not None and expected_head not in by_hash:
        detail = f"the expected head {expected_head} is not in the chain (truncated or rewritten)"
        return _report(entries, len(entries) - 1 if entries else None, "deleted", detail)
    return _report(entries, None, None, "")


def _report(
    entries: Sequence[AuditEntry], index: int | None, kind: TamperKind | None, detail: str
) -> VerifyReport:
    return VerifyReport(
        count=len(entries),
        head_seq=entries[-1].seq if entries else 0,
        head_hash=entries[-1].hash if entries else GENESIS_HASH,
        bad_seq=None if index is None else entries[index].seq,
        bad_index=index,
        kind=kind,
        detail=detail,
    )


_Finding = tuple[int, TamperKind, str]


def _judge(  # noqa: PLR0911, PLR0917 - one return per kind of finding reads best here
    entries: Sequence[AuditEntry],
    i: int,
    prev: AuditEntry | None,
    by_hash: Mapping[str, int],
    seqs: set[int],
    first_seq: int | None,
    first_prev_hash: str | None,
) -> _Finding | None:
    """What is wrong at position ``i`` given the last good entry ``prev``: (position, kind, detail)."""
    entry = entries[i]
    if prev is not None and entry.seq == prev.seq:
        # A fork: two entries claim the same place. The one the next entry
        # does not continue from is the intruder.
        follower = entries[i + 1] if i + 1 < len(entries) else None
        intruder = i - 1 if follower is not None and follower.prev_hash == entry.hash else i
        return intruder, "inserted", f"sequence number {entry.seq} appears twice"
    if prev is not None and entry.seq < prev.seq:
        return i, "reordered", f"sequence number {entry.seq} comes after {prev.seq}"
    if _content_hash(entry) != entry.hash:
        return _judge_mismatch(entries, i, prev, by_hash)
    expected_seq = first_seq if prev is None else prev.seq + 1
    if expected_seq is not None and entry.seq > expected_seq:
        missing = range(expected_seq, entry.seq)
        if any(seq in seqs for seq in missing):
            return i, "reordered", f"it comes before entry {expected_seq}"
        span = str(expected_seq) if len(missing) == 1 else f"{expected_seq}..{entry.seq - 1}"
        return i, "deleted", f"entries {span} are missing before it"
    if expected_seq is not None and entry.seq < expected_seq:
        return i, "deleted", f"the chain must start at entry {expected_seq}"
    expected_prev = first_prev_hash if prev is None else prev.hash
    if expected_prev is None or entry.prev_hash == expected_prev:
        return None
    back = by_hash.get(entry.prev_hash)
    if back is not None and back < i:
        return i, "inserted", f"it links back to entry {entries[back].seq}, not to its predecessor"
    if prev is not None:
        return i - 1, "modified", f"its hash was recomputed: entry {entry.seq} still names the original hash"
    return i, "modified", "its prev_hash does not start the chain"


def _judge_mismatch(
    entries: Sequence[AuditEntry], i: int, prev: AuditEntry | None, by_hash: Mapping[str, int]
) -> _Finding:
    """Classify an entry whose hash does not match its content: changed, or moved intact."""
    entry = entries[i]
    original = _original_seq(entry, entries)
    if original is None:
        return i, "modified", "its hash does not match its content"
    if original < entry.seq and prev is not None and prev.prev_hash == entry.prev_hash:
        # It was pushed up to make room: its predecessor took its place.
        return i - 1, "inserted", f"it took the place of entry {original}, which was renumbered"
    if original > entry.seq and entry.prev_hash not in by_hash:
        return i, "deleted", f"it was entry {original}; entries before it were removed and renumbered"
    return i, "reordered", f"it was hashed as entry {original}, not {entry.seq}"
