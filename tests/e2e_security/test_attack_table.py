"""Issue 13 end to end: the twelve attacks of the issue against real processes, each refused or harmless.

The broker is a real Mosquitto run from the configuration ``pumpops broker
config`` wrote (TLS, password file, ACL); the hub is ``pumpops ingest`` and
``pumpops hub serve``; the pump is ``pumpops agent run`` from the folder
``pumpops devices provision`` wrote (see ``conftest.py``). The outsider is a
``pumpops.mqtt`` client with no credentials, wrong ones, or those of another
provisioned pump (``rogue-1``: a stolen device), and a few lines of Python
against the database file and the HTTP port.

Mosquitto acknowledges (or drops the link of) a publish its ACL denies and then
delivers nothing; so every "not delivered" row sends a control message that
*is* delivered after the forged one, waits until the hub stored the control,
and checks that the forged one was not stored, plus the broker's own log line
saying it denied the publish. Each row returns the reason the system gave;
the table names the words that reason must contain.

The rows run in the table's order against one world: rows 3, 5 and 4 each
run the pump's agent once; the positive path (a provisioned pump over TLS
reports, installs, and follows the hub's signed rollback) runs around them.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from pumpops.audit import chain_entry
from pumpops.errors import BrokerError
from pumpops.fleet import load_profiles
from pumpops.schema import AgentMessage, encode_agent_message
from pumpops.telemetry import encode_message

from .conftest import GROUP, PUMP, ROGUE, SITE, World, pumpops, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # its own Mosquitto, not the system one

_SKAB = load_profiles()["skab-testbed"]
_ROW = [0.027, 0.040, 1.2, 0.05, 75.5, 25.8, 230.0, 32.0]  # plausible SKAB readings, native units


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def telemetry(device: str, msg_id: str, ts_ms: int) -> bytes:
    """A valid telemetry message of ``device`` (one row of every SKAB sensor)."""
    return encode_message(
        msg_id=msg_id,
        device_id=device,
        sensors=[(s.native, s.unit) for s in _SKAB.sensors],
        ts_ms=[ts_ms],
        values=[list(_ROW)],
    )


def agent_message(device: str, kind: str, seq: int, ts_ms: int, body: dict[str, object]) -> bytes:
    """An agent message envelope as the agent's outbox writes it, with the message id filled in."""
    doc = json.loads(
        encode_agent_message(
            AgentMessage(device_id=device, site=SITE, kind=kind, ts_ms=ts_ms, agent_version="0.1.0", body={})
        )
    )
    doc["msg_id"], doc["body"] = f"{device}:{seq}", body
    return json.dumps(doc, separators=(",", ":")).encode()


def newest_state(w: World, device: str = PUMP) -> dict[str, object]:
    with w.store() as store:
        (record,) = store.agent_messages(device_id=device, kind="state", limit=1)
    return dict(record.body())


def stored_readings(w: World, device: str) -> set[int]:
    with w.store() as store:
        return {int(t) // 1000 for t in store.query(device).ts_us}


def denied(w: World, identity: str, topic: str, payload: bytes, *, retain: bool = False) -> str:
    """Publish as ``identity`` where the ACL forbids it; Mosquitto's log line denying this publish."""

    def lines() -> list[str]:
        needle = f"Denied PUBLISH from {identity}"
        return [x for x in w.log("mosquitto").splitlines() if needle in x and f"'{topic}'" in x]

    before = len(lines())
    client = w.connect(identity)
    client.attempt(topic, payload, retain=retain)
    client.close()
    found = wait_until(lambda: lines()[before:], f"Mosquitto's log to deny {identity} publishing on {topic}")
    return str(found[0])


def control_stored(w: World) -> int:
    """The rogue pump publishes a genuine reading on its own topic; its time, once the hub stored it."""
    ts = now_ms() - 30_000
    client = w.connect(ROGUE)
    client.publish(w.topic(ROGUE, "telemetry"), telemetry(ROGUE, f"control-{ts}", ts))
    client.close()
    wait_until(lambda: ts in stored_readings(w, ROGUE), "the control message to be stored")
    return ts


def dead_letter(w: World, reason: str, msg_id: str) -> str:
    """The detail of the dead letter ``reason`` for ``msg_id``, once ingest wrote it."""
    letter = wait_until(
        lambda: next((d for d in w.dead_letters(reason) if d.msg_id == msg_id), None),
        f"a {reason} dead letter for {msg_id}",
    )
    return f"{letter.reason}: {letter.detail}"


# ---------------------------------------------------------------------------------------------- the rows


def mosquitto_pub(w: World, topic: str, payload: bytes, *credentials: str) -> str:
    """The stranger's tool: ``mosquitto_pub`` over TLS with the broker's CA; what it printed."""
    binary = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
    argv = [binary, "-h", "localhost", "-p", str(w.broker_port), "--cafile", str(w.ca_file), "-q", "1"]
    argv += [*credentials, "-t", topic, "-m", payload.decode()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0, "mosquitto_pub without credentials was let in"
    return (done.stdout + done.stderr).strip()


def row1_telemetry_as_a_registered_device(w: World) -> str:
    ts = now_ms() - 40_000
    forged = telemetry(PUMP, f"forged-{ts}", ts)
    refusal = w.refused(None, None)  # no credentials at all
    tool = mosquitto_pub(w, w.topic(PUMP, "telemetry"), forged)
    guessed = mosquitto_pub(w, w.topic(PUMP, "telemetry"), forged, "-u", PUMP, "-P", "pump-1")
    line = denied(w, ROGUE, w.topic(PUMP, "telemetry"), forged)
    control_stored(w)
    assert ts not in stored_readings(w, PUMP)
    return f"{refusal} | {tool} | {guessed} | {line}"


def row2_pre_empted_message_id(w: World) -> str:
    ts = now_ms() - 50_000
    next_id = f"{PUMP}-{ts}-1"  # `<device>-<first ts>-<rows>`: predictable
    line = denied(w, ROGUE, w.topic(PUMP, "telemetry"), telemetry(PUMP, next_id, ts))
    # from its own topic, a payload naming the pump: bound to the identity that sent it
    rogue = w.connect(ROGUE)
    rogue.publish(w.topic(ROGUE, "telemetry"), telemetry(PUMP, next_id, ts))
    reason = dead_letter(w, "wrong_identity", next_id)
    # the genuine message under that id is stored as the pump's, not a msg_id_conflict
    pump = w.connect(PUMP)
    pump.publish(w.topic(PUMP, "telemetry"), telemetry(PUMP, next_id, ts))
    wait_until(lambda: ts in stored_readings(w, PUMP), "the pump's genuine message to be stored")
    assert not [d for d in w.dead_letters("msg_id_conflict") if d.device_id == PUMP]
    return f"{line} | {reason}"


def row3_retained_downgrade(w: World) -> str:
    running = int(w.agent_state()["model_version"])
    assert running > 1
    line = denied(w, ROGUE, w.topic(PUMP, "desired"), b'{"version": 1}', retain=True)
    # nor can another pump read the pump's commands: Mosquitto acknowledges these subscriptions
    # and delivers nothing of the pump's; its own desired (the positive control) arrives
    pump_topics = [w.topic(PUMP, "desired"), f"{w.prefix}/+/+/desired", f"{w.prefix}/#"]
    spy = w.connect(ROGUE, subscriptions=[*pump_topics, w.topic(ROGUE, "desired")])
    # even from the hub's own identity, an unsigned hint to an older version is only a hint
    w.desire(b'{"version": 1}')
    hub = w.connect("hub-rollout")
    hub.publish(w.topic(ROGUE, "desired"), b"control")
    assert spy.receive_until(b"control") == [(w.topic(ROGUE, "desired"), b"control")]
    state = w.run_agent()
    assert state["model_version"] == running
    return f"{line} | {state['last_update_error']}"


def row5_desired_version_that_does_not_exist(w: World) -> str:
    line = denied(w, ROGUE, w.topic(PUMP, "desired"), b'{"version": "999"}', retain=True)
    w.desire(b'{"version": "999"}')
    w.publish_release(3)  # a new release while the bogus hint stands: updates are not frozen
    state = w.run_agent()
    assert state["model_version"] == w.newest == 3
    assert state["health"] == "ok"
    return f"{line} | {state['last_update_error']}"


def row4_cleared_desired(w: World) -> str:
    line = denied(w, ROGUE, w.topic(PUMP, "desired"), b"", retain=True)
    w.desire(b"")  # the hub clears it: the pump returns to (stays on) the newest signed version
    state = w.run_agent()
    assert state["model_version"] == w.newest
    assert state["last_update_error"] is None
    assert state["desired_version"] is None  # nothing from MQTT was persisted
    return f"{line} | newest signed version {state['model_version']}, no error"


def row6_next_sequence_numbers(w: World) -> str:
    with w.store() as store:
        top = max(int(r.msg_id.rsplit(":", 1)[1]) for r in store.agent_messages(device_id=PUMP))
    ts = now_ms() - 20_000
    forged = {"status": "detecting", "health": "ok", "model_version": 1}
    lines = [
        denied(w, ROGUE, w.topic(PUMP, kind), agent_message(PUMP, name, top + 1, ts, forged))
        for kind, name in (("state", "state"), ("alarms", "alarm"))
    ]
    rogue = w.connect(ROGUE)
    rogue.publish(w.topic(ROGUE, "state"), agent_message(PUMP, "state", top + 2, ts, forged))
    reason = dead_letter(w, "wrong_identity", f"{PUMP}:{top + 2}")
    with w.store() as store:
        assert not [r for r in store.agent_messages(device_id=PUMP) if int(r.msg_id.rsplit(":", 1)[1]) > top]
    return " | ".join([*lines, reason])


FAILED = {"status": "failed", "health": "failed", "model_version": 1}


def row7_state_from_the_far_future_with_a_huge_sequence(w: World) -> str:
    year_9999 = 253_402_214_400_000
    line = denied(
        w, ROGUE, w.topic(PUMP, "state"), agent_message(PUMP, "state", 2**63 - 1, year_9999, FAILED)
    )
    rogue = w.connect(ROGUE)  # the stolen pump speaks for itself: still bounded
    rogue.publish(w.topic(ROGUE, "state"), agent_message(ROGUE, "state", 2**63 - 1, year_9999, FAILED))
    future = dead_letter(w, "future_timestamp", f"{ROGUE}:{2**63 - 1}")
    rogue.publish(w.topic(ROGUE, "state"), agent_message(ROGUE, "state", 2**62, now_ms() - 5_000, FAILED))
    jump = dead_letter(w, "seq_jump", f"{ROGUE}:{2**62}")
    assert newest_state(w)["health"] == "ok"  # fleet status' newest state of the pump is the real one
    return f"{line} | {future} | {jump}"


def row8_forged_state_rolls_a_rollout_back(w: World) -> str:
    forged = agent_message(PUMP, "state", 10**6, now_ms() - 1000, FAILED)
    line = denied(w, ROGUE, w.topic(PUMP, "state"), forged)
    control_stored(w)
    # a rollout's wave gate reads the pump's stored states: none of them is the forged failure
    with w.store() as store:
        states = store.agent_messages(device_id=PUMP, kind="state")
    failed = [r.msg_id for r in states if r.body().get("health") == "failed"]
    assert failed == []
    health = newest_state(w)["health"]
    assert health == "ok"
    return f"{line} | {len(states)} genuine states stored, none failed; newest health {health}"


def row9_ingest_session_takeover(w: World) -> str:
    def rogue_connections() -> list[str]:
        log = w.log("mosquitto").splitlines()
        return [x for x in log if "New client connected" in x and "u'rogue-1'" in x]

    before = len(rogue_connections())
    for client_id in ("pumpops-ingest", "hub-ingest"):  # the old well-known id, and ingest's user name
        w.connect(ROGUE, client_id=client_id).close()
    ts = control_stored(w)  # ingest kept its session: the next message is stored
    # the two connections (and the control's) got the rogue's user name as client id, nothing else

    def three_new() -> list[str] | None:
        lines = rogue_connections()[before:]
        return lines if len(lines) >= 3 else None

    new = wait_until(three_new, "the broker to log the rogue's three connections")
    assert all(" as rogue-1 " in line for line in new), new
    assert "Client hub-ingest already connected" not in w.log("mosquitto")  # never taken over
    return f"{new[0]} | control at {ts} stored by ingest"


def row10_credentials_and_tls(w: World) -> str:
    anonymous = w.refused(None, None)
    wrong = w.refused(PUMP, "not-the-password")
    plain = w.refused(PUMP, w.password(PUMP), tls=False)
    agent = (w.pump_dir / "agent.toml").read_text()
    for needle in ("url = \"mqtts://localhost:", f'username = "{PUMP}"', 'password_file = "broker.password"',
                   'ca_file = "ca.pem"'):  # fmt: skip
        assert needle in agent
    for name in ("agent.toml", "broker.password", "ca.pem", "root.json"):
        assert stat.S_IMODE((w.pump_dir / name).stat().st_mode) == 0o600
    conf = (w.broker_dir / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf
    assert [line for line in conf.splitlines() if line.startswith("listener")] == [
        f"listener {w.broker_port} 127.0.0.1"
    ]
    return f"{anonymous} | {wrong} | {plain}"


def row11_forged_audit_entry(w: World) -> str:
    assert pumpops("-w", str(w.ws), "audit", "verify").returncode == 0
    db = sqlite3.connect(w.ws / "pumpops.db")
    try:
        seq, prev = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        e = chain_entry(seq + 1, time.time_ns() // 1000, "mallory@x", "model.promoted", "m/evil", {}, prev)
        with db:
            db.execute(
                "INSERT INTO audit (seq, time_us, actor, action, subject, payload, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, '{}', ?, ?)",
                (e.seq, e.time_us, e.actor, e.action, e.subject, e.prev_hash, e.hash),
            )
        forged = pumpops("-w", str(w.ws), "audit", "verify", check=False)
        with db:
            db.execute("DELETE FROM audit WHERE seq = ?", (e.seq,))
    finally:
        db.close()
    assert forged.returncode == 1
    assert f"entry seq {e.seq}" in forged.stderr
    # a cut tail: a copy of the database without its last entry fails against the anchored head
    cut = w.tmp / "cut.db"
    cut.unlink(missing_ok=True)
    # SQLite's backup, not a file copy: the running hub's latest commits may still be in the WAL file
    with sqlite3.connect(w.ws / "pumpops.db") as live, sqlite3.connect(cut) as copy:
        live.backup(copy)
        copy.execute("DELETE FROM audit WHERE seq = ?", (seq,))
    truncated = pumpops("-w", str(w.ws), "audit", "verify", "--db", f"sqlite:///{cut}", check=False)
    assert truncated.returncode == 1
    assert f"entry seq {seq}" in truncated.stderr
    assert pumpops("-w", str(w.ws), "audit", "verify").returncode == 0  # the real chain is intact
    return f"{forged.stderr.strip()} | {truncated.stderr.strip()}"


def _http(w: World, path: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{w.http_port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def row12_odd_paths_and_deep_messages(w: World) -> str:
    codes = {
        path: _http(w, path)[0] for path in ("/tuf/metadata/%00", "/tuf/metadata/" + "a" * 5000 + ".json")
    }
    assert set(codes.values()) <= {400, 404}, codes
    head, body = _http(w, "/tuf/metadata/timestamp.json", "HEAD")
    assert (head, body) == (200, b"")
    deep: object = {}
    for _ in range(900):
        deep = {"x": deep}
    rogue = w.connect(ROGUE)
    rogue.publish(w.topic(ROGUE, "state"), agent_message(ROGUE, "state", 7, now_ms() - 1000, {"x": deep}))
    reason = dead_letter(w, "too_deep", f"{ROGUE}:7")
    assert not w.dead_letters("internal_error")
    assert "Traceback" not in w.log("hub")
    assert "Traceback" not in w.log("ingest")
    return f"HTTP {sorted(set(codes.values()))} | {reason}"


# ---------------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Attack:
    """One row of the issue: what the outsider does, what happens now, and what the system says."""

    row: int
    did: str
    outcome: str
    says: tuple[str, ...]  # words the system's reason contains
    run: Callable[[World], str]


DENIED = f"Denied PUBLISH from {ROGUE}"  # Mosquitto's log line for a publish its ACL refused
ATTACKS = (
    Attack(1, "publish telemetry as a registered pump", "refused at connect; not delivered (ACL)",
           ("not authorized", "not authorised", DENIED), row1_telemetry_as_a_registered_device),
    Attack(2, "publish first under the pump's next message id",
           "not delivered; from its own topic dead-lettered", (DENIED, "wrong_identity"),
           row2_pre_empted_message_id),
    Attack(3, "retained desired {version: 1} while a newer version runs",
           "not delivered; the agent refuses an unsigned downgrade", (DENIED, "downgrade to 1 not signed"),
           row3_retained_downgrade),
    Attack(5, 'desired {version: "999"}', "not delivered; reported, and the next release installs",
           (DENIED, "999"), row5_desired_version_that_does_not_exist),
    Attack(4, "clear the retained desired", "not delivered; a cleared desired returns to the newest signed",
           (DENIED, "newest signed version 3"), row4_cleared_desired),
    Attack(6, "agent state/alarm under the pump's next sequence numbers", "not delivered; dead-lettered",
           (DENIED, "wrong_identity"), row6_next_sequence_numbers),
    Attack(7, "state with seq 2^63-1, year 9999, health failed",
           "not delivered; a stolen pump's own is refused", (DENIED, "future_timestamp", "seq_jump"),
           row7_state_from_the_far_future_with_a_huge_sequence),
    Attack(8, "the forged failed state, then a rollout ticks", "the gate sees only genuine states",
           (DENIED, "none failed; newest health ok"), row8_forged_state_rolls_a_rollout_back),
    Attack(9, "connect with ingest's client id", "the broker gives a client its user name as id: no takeover",
           ("as rogue-1", "stored by ingest"), row9_ingest_session_takeover),
    Attack(10, "look for a way in without credentials or TLS",
           "anonymous, wrong password and plain TCP refused", ("not authorized",), row10_credentials_and_tls),
    Attack(11, "append a forged audit entry; cut the tail", "audit verify fails naming the seq",
           ("unsigned", "truncated"), row11_forged_audit_entry),
    Attack(12, "odd HTTP paths; a 900-deep agent message", "400/404, no traceback; dead-lettered too_deep",
           ("HTTP [4", "too_deep"), row12_odd_paths_and_deep_messages),
)  # fmt: skip


def test_provisioned_pump_reports_over_tls_and_installs_the_newest_release(w: World) -> None:
    state = w.agent_state()
    assert (state["model_version"], state["health"]) == (w.newest, "ok")
    log = w.log("mosquitto")
    assert f"u'{PUMP}'" in log  # connected with its own user name, on the TLS-only listener
    with w.store() as store:
        assert len(store.query(PUMP).ts_us) >= 1000  # its raw readings
        kinds = {r.kind for r in store.agent_messages(device_id=PUMP)}
    assert "state" in kinds
    assert newest_state(w)["model_version"] == w.newest
    assert not w.dead_letters("wrong_identity")


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: f"row{a.row}")
def test_attack_is_refused_or_harmless_with_its_reason(w: World, attack: Attack) -> None:
    said = attack.run(w)
    for words in attack.says:
        assert words.lower() in said.lower(), f"row {attack.row}: expected {words!r} in {said!r}"


def test_hub_rolls_the_group_back_through_a_signed_pin_and_the_pump_follows(w: World) -> None:
    running = int(w.agent_state()["model_version"])
    assert running > 1
    pumpops("-w", str(w.ws), "tuf", "intent", GROUP, "--pin", "1", "--reason", "e2e: roll back")
    w.desire(b'{"version": 1}')
    state = w.run_agent()
    assert (state["model_version"], state["health"], state["last_update_error"]) == (1, "ok", None)
    assert newest_state(w)["model_version"] == 1  # the hub stored it
    # every genuine message of the pump's runs was stored: no forged id pre-empted one
    assert not [d for d in w.dead_letters("msg_id_conflict") if d.device_id == PUMP]
    assert pumpops("-w", str(w.ws), "audit", "verify").returncode == 0  # the signed rollback is audited


def test_the_table_names_every_row_of_the_issue() -> None:
    assert sorted(a.row for a in ATTACKS) == list(range(1, 13))


def test_revoked_pump_is_refused_once_the_broker_reloads(w: World) -> None:
    """Last: the stolen pump's credentials are revoked (``pumpops devices revoke --pid-file``)."""
    w.connect(ROGUE).close()
    pumpops("-w", str(w.ws), "devices", "revoke", ROGUE, "--pid-file", str(w.tmp / "mosquitto.pid"))
    refusal = wait_until(lambda: _refusal(w, ROGUE), "the reloaded broker to refuse the revoked pump")
    assert "not authorized" in refusal.lower()
    w.connect(PUMP).close()  # the other pump is still admitted


def _refusal(w: World, identity: str) -> str | None:
    try:
        w.connect(identity, timeout_s=3).close()
    except BrokerError as exc:
        return str(exc)
    return None
