"""The tiered response (issue 15): which tier acts on which verdict, then the hub step end to end.

The table feeds the real shift verdicts (``judge_shifts`` over
``DeviceShift`` reports, ``plan_response``) into :func:`choose_tiers`.
The end-to-end test runs :func:`respond_to_shifts` on a real workspace
(store, signed audit, a TUF repository from ``pumpops keys init``): the
order is signed into the repository, a real python-tuf client on the device
side reads it, and every step is in the audit trail with its evidence.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pumpops.audit import workspace_signer
from pumpops.edge import EdgeUpdater
from pumpops.fleet import Device
from pumpops.monitoring import DeviceShift, GroupResponse, plan_response
from pumpops.monitoring._drift import DriftPolicy
from pumpops.monitoring._shift_verdicts import judge_shifts
from pumpops.release import open_repository, recalibration_orders
from pumpops.retrain import TierMemory, choose_tiers, respond_to_shifts
from pumpops.settings import init_workspace, load_settings
from pumpops.store import open_store

NOW = 10_000_000
POLICY = DriftPolicy(window_s=3600, min_fraction=0.4, min_devices=2)


def _shift(name: str, sensors: tuple[str, ...], hint: str, since: int = NOW - 600_000) -> DeviceShift:
    return DeviceShift(
        name,
        NOW,
        sensors,
        hint,
        shift_sd=dict.fromkeys(sensors, 8.0),
        since_ms=dict.fromkeys(sensors, since),
        confirmed=sensors,
        fault_signs=("vibration grows",) if hint == "fault_like" else (),
    )


def _response(*shifts: DeviceShift, group: str = "g") -> GroupResponse:
    return plan_response(judge_shifts(group, shifts, now_ms=NOW, policy=POLICY))


QUIET = _shift("q", (), "none")
TABLE = {
    # name: (device reports, memory, recalibrate_local, expected [(tier, device)])
    "nothing_shifted_nothing_done": ((QUIET, _shift("r", (), "none")), TierMemory(), True, []),
    "one_local_shift_recalibrates_that_device": (
        (_shift("a", ("discharge_pressure",), "sensor_shift"), QUIET, _shift("r", (), "none")),
        TierMemory(),
        True,
        [("recalibrate", "a")],
    ),
    "shared_shift_retrains_the_group_not_each_device": (
        (_shift("a", ("flow",), "sensor_shift"), _shift("b", ("flow",), "sensor_shift"), QUIET),
        TierMemory(),
        True,
        [("retrain", None)],
    ),
    "fault_keeps_alarming_only": (
        (_shift("f", ("vibration",), "fault_like"), QUIET, _shift("r", (), "none")),
        TierMemory(),
        True,
        [("alarm", "f")],
    ),
    "mixed_group_cheapest_first": (
        (
            _shift("a", ("flow",), "sensor_shift"),
            _shift("b", ("flow",), "sensor_shift"),
            _shift("c", ("suction_pressure",), "sensor_shift"),
            _shift("f", ("vibration",), "fault_like"),
            QUIET,
        ),
        TierMemory(),
        True,
        [("recalibrate", "c"), ("retrain", None), ("alarm", "f")],
    ),
    "pending_shift_waits": ((_shift("p", ("flow",), "new_shift"), QUIET, QUIET), TierMemory(), True, []),
    "recalibration_already_ordered_after_the_shift": (
        (_shift("a", ("flow",), "sensor_shift"), QUIET, _shift("r", (), "none")),
        TierMemory(recalibrated_ms={"a": NOW - 300_000}),
        True,
        [],
    ),
    "order_older_than_a_new_shift_orders_again": (
        (_shift("a", ("flow",), "sensor_shift"), QUIET, _shift("r", (), "none")),
        TierMemory(recalibrated_ms={"a": NOW - 900_000}),
        True,
        [("recalibrate", "a")],
    ),
    "tier_one_switched_off": (
        (_shift("a", ("flow",), "sensor_shift"), QUIET, _shift("r", (), "none")),
        TierMemory(),
        False,
        [],
    ),
    "same_fault_noted_once": (
        (_shift("f", ("vibration",), "fault_like"), QUIET, _shift("r", (), "none")),
        TierMemory(alarmed={"f": frozenset({NOW - 600_000})}),
        True,
        [],
    ),
    "same_onset_retrained_once": (
        (_shift("a", ("flow",), "sensor_shift"), _shift("b", ("flow",), "sensor_shift"), QUIET),
        TierMemory(retrained=frozenset({NOW - 600_000})),
        True,
        [],
    ),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_tier_chosen_from_the_verdict(name: str) -> None:
    shifts, memory, local, expected = TABLE[name]
    actions = choose_tiers(_response(*shifts), memory, recalibrate_local=local)
    assert [(a.tier, a.device_id) for a in actions] == expected
    for action in actions:
        assert action.reason
        if action.tier != "retrain":
            assert action.evidence["shift_sd"]  # the device's own report is the evidence
            assert action.since_ms == NOW - 600_000
        else:
            assert action.evidence["shared"] == {"flow": ["a", "b"]}
            assert action.since_ms == NOW - 600_000


# ----------------------------------------------------------------------------- end to end


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    init_workspace(ws)
    (ws / "pumpops.toml").write_text(
        (ws / "pumpops.toml").read_text() + "\n[retrain]\nrecalibration_ttl_s = 7200\n", encoding="utf-8"
    )
    settings = load_settings(ws)
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
    subprocess.run(
        [sys.executable, "-m", "pumpops", "-w", str(ws), "keys", "init"], check=True, capture_output=True
    )
    with open_store(settings.resolved_database_url) as store:
        store.register_devices([Device(d, "site-1", "acme-ansi", "g") for d in ("a", "b", "c", "f", "q")])
    return ws


def test_respond_signs_audits_and_the_device_reads_the_order(workspace: Path, tmp_path: Path) -> None:
    settings = load_settings(workspace)
    response = _response(
        _shift("a", ("flow",), "sensor_shift"),
        _shift("b", ("flow",), "sensor_shift"),
        _shift("c", ("suction_pressure",), "sensor_shift"),
        _shift("f", ("vibration",), "fault_like"),
        QUIET,
    )
    signer = workspace_signer(workspace)
    with open_store(settings.resolved_database_url, audit_signer=signer) as store:
        done = respond_to_shifts(settings, store, NOW * 1000, actor="hub", responses={"g": response})
        assert [(d.action.tier, d.action.device_id, d.done) for d in done] == [
            ("recalibrate", "c", True),
            ("retrain", None, True),
            ("alarm", "f", True),
        ]
        assert done[0].order == 1
        again = respond_to_shifts(
            settings, store, NOW * 1000 + 60_000_000, actor="hub", responses={"g": response}
        )
        assert again == []  # the same shifts are answered once
        entries = store.audit_entries()
    tiers = [e for e in entries if e.action.startswith("tier.")]
    assert [(e.action, e.subject) for e in tiers] == [
        ("tier.recalibrate", "device/c"),
        ("tier.retrain", "group/g"),
        ("tier.alarm", "device/f"),
    ]
    recal = tiers[0].payload
    assert recal["evidence"]["shifted"] == ["suction_pressure"]
    assert recal["evidence"]["shift_sd"] == {"suction_pressure": 8.0}
    assert recal["order"] == 1
    assert recal["now_ms"] == NOW
    assert tiers[1].payload["evidence"]["shared"] == {"flow": ["a", "b"]}
    assert "keep alarming" in tiers[2].payload["reason"]
    signed = [e for e in entries if e.action == "release.recalibration_signed"]
    assert [e.subject for e in signed] == ["device/c"]
    assert all(e.signature for e in tiers + signed)  # signed audit entries (ADR 0013)

    orders = recalibration_orders(open_repository(settings), "g")
    assert set(orders) == {"c"}
    assert orders["c"].evidence["shifted"] == ["suction_pressure"]
    # the device side: a real python-tuf client from the provisioned root
    repo = open_repository(settings)
    device = EdgeUpdater(
        trusted_root=repo.root_bytes(1),
        repository=repo.folder,
        state_dir=tmp_path / "dev" / "tuf",
        install_dir=tmp_path / "dev" / "models",
        group="g",
        target="x86_64-ipc",
        agent_version="9.9.9",
    )
    device.signed_intent()  # refreshes and verifies the group's role
    assert device.recalibrations["c"]["order"] == 1
    assert "a level shift of its own" in device.recalibrations["c"]["reason"]


def test_a_device_not_in_the_group_is_never_signed(workspace: Path) -> None:
    settings = load_settings(workspace)
    response = _response(_shift("zz", ("flow",), "sensor_shift"), QUIET, _shift("r", (), "none"))
    with open_store(settings.resolved_database_url, audit_signer=workspace_signer(workspace)) as store:
        done = respond_to_shifts(settings, store, NOW * 1000, actor="hub", responses={"g": response})
        assert len(done) == 1
        assert not done[0].done
        assert "not registered in group 'g'" in str(done[0].error)
        entry = next(e for e in store.audit_entries() if e.action == "tier.recalibrate")
    assert entry.payload["done"] is False
    assert recalibration_orders(open_repository(settings), "g") == {}
