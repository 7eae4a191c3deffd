"""The outbox: drop decisions (table-driven, no SQLite), persistence, bound, forwarding, kill -9."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pumpops.edge import Outbox, OutboxEntry, choose_drops
from pumpops.errors import ConfigError, InputError

E = OutboxEntry

# name, entries, incoming_size, max_bytes, expected drops
DROP_SCENARIOS = [
    ("fits", [E(1, "alarm", 10)], 10, 100, []),
    ("exactly_full_fits", [E(1, "alarm", 50)], 50, 100, []),
    ("oldest_summary_first", [E(1, "summary", 40), E(2, "summary", 40)], 30, 100, [1]),
    (
        "summaries_before_drift",
        [E(1, "drift", 30), E(2, "summary", 30), E(3, "alarm", 30)],
        30,
        100,
        [2],
    ),
    (
        "drift_before_state",
        [E(1, "state", 30), E(2, "drift", 30), E(3, "alarm", 30)],
        30,
        100,
        [2],
    ),
    (
        "state_before_alarm",
        [E(1, "alarm", 30), E(2, "state", 30), E(3, "alarm", 30)],
        30,
        100,
        [2],
    ),
    ("oldest_alarm_last_resort", [E(1, "alarm", 50), E(2, "alarm", 50)], 50, 100, [1]),
    (
        "as_many_as_needed_in_order",
        [E(1, "alarm", 20), E(2, "state", 20), E(3, "summary", 20), E(4, "drift", 20), E(5, "summary", 20)],
        70,
        100,
        [3, 5, 4, 2],
    ),
]


@pytest.mark.parametrize(
    ("entries", "incoming", "max_bytes", "expected"),
    [s[1:] for s in DROP_SCENARIOS],
    ids=[s[0] for s in DROP_SCENARIOS],
)
def test_choose_drops_scenarios(
    entries: list[OutboxEntry], incoming: int, max_bytes: int, expected: list[int]
) -> None:
    assert choose_drops(entries, incoming, max_bytes) == expected


def test_choose_drops_oversized_incoming_refused() -> None:
    with pytest.raises(InputError, match="never fit"):
        choose_drops([], 101, 100)


def test_outbox_put_peek_ack_in_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "dev-1", 10_000) as box:
        ids = [box.put("alarm", f"t/{i}", bytes([i])) for i in range(5)]
        assert ids == [f"dev-1:{i}" for i in range(1, 6)]
        assert [m.msg_id for m in box.peek(3)] == ids[:3]
        assert box.ack(ids[:2]) == 2
        assert box.ack(ids[:2]) == 0  # idempotent
        assert [m.payload for m in box.peek(10)] == [b"\x02", b"\x03", b"\x04"]
        assert box.depth() == (3, 3)


def test_outbox_survives_reopen_and_ids_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, "dev-1", 100) as box:
        a = box.put("summary", "t", b"a" * 60)
        box.put("summary", "t", b"b" * 60)  # drops the first
        last = box.put("alarm", "t", b"c" * 10)
        box.ack([last])
    with Outbox(path, "dev-1", 100) as box:
        assert box.dropped()["summary"] == 1
        assert [m.payload for m in box.peek(10)] == [b"b" * 60]
        new = box.put("state", "t", b"s")
        assert int(new.split(":")[1]) > int(last.split(":")[1]) > int(a.split(":")[1])


def test_outbox_drop_order_counts_every_kind(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "dev-1", 40) as box:
        for kind in ("alarm", "state", "drift", "summary"):
            box.put(kind, f"t/{kind}", b"x" * 10)
        box.put("alarm", "t/alarm", b"x" * 30)
        assert box.dropped() == {"alarm": 0, "summary": 1, "drift": 1, "state": 1}
        assert [m.kind for m in box.peek(10)] == ["alarm", "alarm"]
        # A new summary cannot push out alarms: it is the one dropped (and counted).
        box.put("summary", "t/summary", b"x" * 10)
        assert [m.kind for m in box.peek(10)] == ["alarm", "alarm"]
        assert box.dropped()["summary"] == 2
        assert box.depth()[1] <= 40


def test_outbox_oversized_message_refused(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "dev-1", 16) as box:
        with pytest.raises(InputError, match="larger than the whole outbox"):
            box.put("alarm", "t", b"x" * 17)
        with pytest.raises(InputError, match="unknown outbox kind"):
            box.put("telemetry", "t", b"x")
        assert box.depth() == (0, 0)


def test_outbox_other_device_file_rejected(tmp_path: Path) -> None:
    Outbox(tmp_path / "o.db", "dev-1", 10).close()
    with pytest.raises(ConfigError, match="belongs to device"):
        Outbox(tmp_path / "o.db", "dev-2", 10)


def test_outbox_forward_stops_at_first_failure(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "dev-1", 10_000) as box:
        ids = [box.put("alarm", "t", str(i).encode()) for i in range(10)]
        seen: list[str] = []

        def flaky(topic: str, payload: bytes, msg_id: str) -> bool:
            seen.append(msg_id)
            return len(seen) <= 4

        assert box.forward(flaky, batch=3) == 4
        assert seen == ids[:5]
        assert box.peek(1)[0].msg_id == ids[4]

        def raising(topic: str, payload: bytes, msg_id: str) -> bool:
            if msg_id == ids[6]:
                raise ConnectionError("link down")
            return True

        with pytest.raises(ConnectionError):
            box.forward(raising)
        assert box.peek(1)[0].msg_id == ids[6]
        assert box.forward(lambda t, p, m: True) == 4
        assert box.depth() == (0, 0)


_KILL_CHILD = textwrap.dedent(
    """
    import sys
    from pumpops.edge import Outbox
    box = Outbox(sys.argv[1], "dev-k", 4000)
    i = 0
    while True:
        kind = ("summary", "alarm", "drift", "state")[i % 4]
        print(box.put(kind, "t", bytes([i % 256]) * 97), flush=True)
        i += 1
    """
)


def test_outbox_consistent_after_sigkill_mid_put_loop(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        committed = [proc.stdout.readline().strip() for _ in range(300)]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert committed[-1] == "dev-k:300"
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        last_seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name='messages'").fetchone()[0]
    finally:
        db.close()
    with Outbox(path, "dev-k", 4000) as box:
        msgs = box.peek(10_000)
        n, size = box.depth()
        assert size <= 4000
        assert n == len(msgs) > 0
        seqs = [m.seq for m in msgs]
        assert seqs == sorted(seqs)
        assert last_seq >= 300  # everything printed was committed before the kill
        # Each put either kept or counted its victims: nothing vanished.
        assert last_seq == n + sum(box.dropped().values())
        assert all(len(m.payload) == 97 for m in msgs)
        box.put("alarm", "t", b"after")


def test_outbox_running_byte_total_matches_table(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, "dev-1", 500) as box:
        ids = [box.put(("alarm", "summary", "drift", "state")[i % 4], "t", b"x" * (7 + i)) for i in range(60)]
        box.ack(ids[40:50])
        box.forward(lambda t, p, m: not m.endswith(":55"))
        stored = box._db.execute("SELECT value FROM meta WHERE key = 'bytes'").fetchone()[0]
        assert int(stored) == box.depth()[1] <= 500
