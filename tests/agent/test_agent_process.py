# ruff: noqa: F811 - the fixtures are imported from _agent_world (no conftest: its basename would clash)
"""The agent as a real process against Mosquitto and a repository served by ``pumpops hub serve``.

Each agent replays SKAB ``valve1/0.csv`` (1,147 s of a real pump test bed
with a labelled valve fault in rows 573-973) as device ``skab-pump-1``; the
released model has no calibration for it, so the agent commissions itself
on its first 540 rows (the fault starts at row 573). ``clock = "data"``: update checks every 60 s and
summaries every 300 s of recorded time.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _agent_world import (  # type: ignore[import-not-found]
    DEVICE,
    Hub,
    Listener,
    Released,
    free_port,
    hub,  # noqa: F401 - fixture
    make_agent,  # noqa: F401 - fixture
    private_mosquitto,
    released,  # noqa: F401 - fixture
)

from pumpops.edge import Outbox, Slots
from pumpops.release import TufRepository

pytestmark = pytest.mark.timeout(300)


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [int(m["msg_id"].rsplit(":", 1)[1]) for m in messages]


def wait_for(predicate: Any, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_first_install_commissions_detects_the_valve_fault_and_reports(
    hub: Hub, released: Released, make_agent: Any
) -> None:
    hub.publish(released.bundles[1])
    agent, listener = make_agent()
    assert agent.run() == 0, agent.log()

    state = agent.state()
    assert state["status"] == "detecting"
    assert (state["model_name"], state["model_version"], state["slot"]) == ("pumpops-skab", 1, "A")
    assert state["calibration"] == "calibrated (device)"
    assert state["health"] == "ok"
    assert state["execution_provider"] == "CPUExecutionProvider"
    assert state["last_update_error"] is None
    assert state["stale"] is False
    assert state["counts"]["windows_scored"] > 500

    assert [a for a in agent.alarms() if a["event"] == "raised"], agent.log()
    assert state["counts"]["rows"] == 1147

    assert listener is not None
    assert wait_for(
        lambda: listener.of_kind("state") and listener.of_kind("state")[-1]["body"]["status"] == "detecting"
    )
    received = [body for _, body, _ in listener.messages]
    ids = seqs(received)
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids))
    kinds = {m["kind"] for m in received}
    assert {"alarm", "summary", "drift", "state"} <= kinds
    assert [m["body"]["alarm_id"] for m in listener.of_kind("alarms")] == [
        a["alarm_id"] for a in agent.alarms()
    ]


def test_first_install_without_readings_yet_logs_info_not_error(
    hub: Hub, released: Released, make_agent: Any
) -> None:
    hub.publish(released.bundles[1])
    agent, _ = make_agent(listen=False)
    assert agent.run(broker__url="none") == 0, agent.log()
    log = agent.log()
    # the first check finds no readings to judge the model with: it waits, which is normal
    assert "is installed once there are readings to check it with" in log
    assert " ERROR " not in log, log
    state = agent.state()
    assert (state["model_version"], state["health"], state["last_update_error"]) == (1, "ok", None)


def test_alarms_fall_in_the_labelled_fault(hub: Hub, released: Released, make_agent: Any) -> None:
    hub.publish(released.bundles[1])
    agent, _ = make_agent(listen=False)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert agent.run(broker__url="none", source__start=start.isoformat()) == 0, agent.log()
    # The replay puts row i at start + i s (valve1/0 is sampled once a second).
    rows = [
        (a["started_ms"] - int(start.timestamp() * 1000)) // 1000
        for a in agent.alarms()
        if a["event"] == "raised"
    ]
    assert rows
    in_fault = [r for r in rows if 573 <= r <= 1003]
    assert len(in_fault) >= len(rows) / 2, rows


def test_update_on_desired_state_then_tampered_and_broken_updates_refused(
    hub: Hub, released: Released, make_agent: Any
) -> None:
    hub.publish(released.bundles[1])
    agent, listener = make_agent()
    assert agent.run() == 0, agent.log()
    assert agent.state()["model_version"] == 1

    # A new release, and the hub's desired state names it: the agent installs it into slot B.
    hub.publish(released.bundles[2])
    assert listener is not None
    listener.desire("skoltech", DEVICE, 2)
    assert agent.run() == 0, agent.log()
    state = agent.state()
    assert (state["model_version"], state["slot"], state["health"]) == (2, "B", "ok")
    assert state["desired_version"] == "2"

    # Version 3 scores NaN: the health check refuses it, version 2 keeps running.
    hub.publish(released.bundles[3])
    listener.desire("skoltech", DEVICE, 3)
    assert agent.run() == 0, agent.log()
    state = agent.state()
    assert state["model_version"] == 2
    assert state["health"] == "refused"
    assert "not finite" in state["last_update_error"]
    assert state["counts"]["windows_scored"] > 500

    # A tampered file in the repository: refused before install, version 2 keeps running.
    # (An older version is tried at all only because the hub signs the rollback: issue 13.)
    hub.cli("tuf", "intent", "skab-testbed", "--pin", "1")
    listener.desire("skoltech", DEVICE, 1)
    (model_file,) = (hub.repository / "targets" / "models" / "skab-testbed" / "x86_64-ipc" / "1").glob(
        "*.model.onnx"
    )
    model_file.write_bytes(model_file.read_bytes()[:-8] + b"tampered")
    assert agent.run() == 0, agent.log()
    state = agent.state()
    assert state["model_version"] == 2
    assert "TamperedArtifactError" in state["last_update_error"]


@pytest.mark.parametrize(
    ("step", "expected"),
    [("copied", 1), ("placed", 1), ("checked", 1), ("before_switch", 1), ("switched", 2), ("done", 2)],
)
def test_kill_9_during_install_leaves_a_verified_model(
    hub: Hub, released: Released, make_agent: Any, step: str, expected: int
) -> None:
    hub.publish(released.bundles[1])
    agent, _ = make_agent(listen=False)
    assert agent.run(broker__url="none") == 0, agent.log()
    hub.publish(released.bundles[2])

    code = agent.run(kill_at=step)
    assert code == -signal.SIGKILL, agent.log()
    current = Slots(agent.state_dir / "slots").current()  # re-verifies every hash
    assert current is not None
    assert current.model_version == expected

    # Restarted, it runs the model it has and finishes the update.
    assert agent.run() == 0, agent.log()
    state = agent.state()
    assert (state["model_version"], state["health"]) == (2, "ok")
    assert state["counts"]["windows_scored"] > 500


def test_repository_down_and_metadata_expired_detection_goes_on(
    hub: Hub, released: Released, make_agent: Any
) -> None:
    hub.publish(released.bundles[1])
    agent, _ = make_agent(listen=False)
    assert agent.run(broker__url="none") == 0, agent.log()

    # The hub re-signs with a timestamp that expired yesterday (a freeze, or a hub that stopped signing).
    repo = TufRepository(hub.repository, now=datetime.now(UTC) - timedelta(days=3))
    signers = hub_signers(hub)
    repo.publish([], signers)
    # Two hours later (the replay's clock), with a maximum model age of one hour.
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    assert agent.run(broker__url="none", agent__max_model_age_h=1.0, source__start=later) == 0, agent.log()
    state = agent.state()
    assert "StaleMetadataError" in state["last_update_error"]
    assert state["model_version"] == 1
    assert state["stale"] is True
    assert state["counts"]["windows_scored"] > 500
    assert [a for a in agent.alarms() if a["event"] == "raised"]

    # The repository is down: still detecting.
    hub.stop()
    before = len(agent.alarms())
    assert agent.run(broker__url="none") == 0, agent.log()
    state = agent.state()
    assert "DownloadError" in state["last_update_error"]
    assert state["status"] == "detecting"
    assert len(agent.alarms()) > before


def hub_signers(hub: Hub) -> dict[str, list[Any]]:
    from pumpops.release import keystore, online_signers
    from pumpops.settings import load_settings

    return online_signers(keystore(load_settings(hub.workspace)))


def test_broker_down_then_outbox_delivered_once_in_order(
    hub: Hub, released: Released, make_agent: Any, tmp_path: Path
) -> None:
    hub.publish(released.bundles[1])
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    agent, _ = make_agent(broker_url=url, listen=False)
    # The broker is down for the whole recording (19 minutes of pump data, many summaries).
    assert agent.run(agent__summary_interval_s=60) == 0, agent.log()
    box = Outbox(agent.state_dir / "outbox.sqlite", DEVICE, 10**9)
    queued = [m.msg_id for m in box.peek(100_000)]
    box.close()
    assert len(queued) > 30

    with private_mosquitto(port, tmp_path):
        listener = Listener(url, agent.prefix)
        try:
            # The agent comes back with the broker up: the backlog goes first, in order, once.
            assert agent.run(source__path=str(released.skab)) == 0, agent.log()
            assert wait_for(lambda: len(listener.messages) >= len(queued))
            got = [body["msg_id"] for _, body, _ in listener.messages]
        finally:
            listener.close()
    assert got[: len(queued)] == queued
    assert len(got) == len(set(got))
    assert seqs([{"msg_id": g} for g in got]) == sorted(seqs([{"msg_id": g} for g in got]))
    box = Outbox(agent.state_dir / "outbox.sqlite", DEVICE, 10**9)
    assert box.depth()[0] == 0
    box.close()


def test_outbox_full_drops_summaries_first_and_reports_it(
    hub: Hub, released: Released, make_agent: Any
) -> None:
    hub.publish(released.bundles[1])
    agent, _ = make_agent(listen=False)
    assert agent.run(broker__url="none", agent__summary_interval_s=20, outbox_max_bytes=30_000) == 0
    dropped = agent.state()["outbox_dropped"]
    box = Outbox(agent.state_dir / "outbox.sqlite", DEVICE, 30_000)
    try:
        kinds = [json.loads(m.payload)["kind"] for m in box.peek(10_000)]
        assert box.dropped() == dropped | {"state": box.dropped()["state"]}  # the last state report itself
        assert box.depth()[1] <= 30_000
    finally:
        box.close()
    assert dropped["summary"] > 0
    # Summaries go first, alarms last: an alarm is dropped only when nothing else is left to drop.
    if dropped["alarm"] > 0:
        assert set(kinds) == {"alarm"}
    assert kinds.count("alarm") + dropped["alarm"] == len(agent.alarms())


def test_raw_readings_upload_is_rate_limited_and_counted(
    hub: Hub, released: Released, make_agent: Any
) -> None:
    hub.publish(released.bundles[1])
    agent, listener = make_agent()
    assert agent.run(upload__raw_readings=True, upload__raw_max_rows_per_s=50) == 0, agent.log()
    counts = agent.state()["counts"]
    assert counts["raw_rows_sent"] > 0
    assert counts["raw_rows_not_sent"] > 0  # the replay runs far faster than 50 rows/s
    assert counts["raw_rows_sent"] + counts["raw_rows_not_sent"] == 1147
    assert listener is not None
    assert wait_for(
        lambda: sum(len(m["ts_ms"]) for m in listener.of_kind("telemetry")) == counts["raw_rows_sent"]
    )
    first = listener.of_kind("telemetry")[0]
    assert first["schema"] == "pumpops.telemetry/1"
    assert first["msg_id"] == f"{DEVICE}-raw-{first['ts_ms'][0]}"
    assert len(first["sensors"]) == len(first["values"][0]) == 8
