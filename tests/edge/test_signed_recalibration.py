"""Signed recalibration orders (issue 15, tier 1): the hub's signed word, never an MQTT message, recalibrates.

Three levels, as for the signed intent (test_signed_intent.py):

- :func:`decide_recalibration`, the pure decision, as a table;
- the hub's :func:`set_recalibration` read back by a real :class:`EdgeUpdater`
  through python-tuf from a real repository on disk (the ``_lab`` lab),
  including metadata changed after signing (refused by TUF, nothing recalibrated);
- the agent's updating room following orders once each, refusing unsigned,
  replayed and expired ones with a clear reason, and the update child process
  carrying the orders through its JSON line.
"""

from __future__ import annotations

import json
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _lab import GROUP, TARGET, Lab

from pumpops import errors
from pumpops.edge._recalibration import RECALIBRATE_FIELD, decide_recalibration
from pumpops.edge._update_child import ChildUpdater, UpdateJob
from pumpops.edge._updating import UpdatingRoom
from pumpops.release import RECALIBRATE_FIELD as HUB_FIELD
from pumpops.release import recalibration_orders, set_recalibration

DEVICE = "pump-7"
NOW_MS = 1_765_000_000_000  # 2025-12-06
LATER = "2025-12-07T00:00:00Z"
EARLIER = "2025-12-05T00:00:00Z"

# ----------------------------------------------------------------------------- the pure decision

TABLE: dict[str, tuple[dict[str, Any], int, int | None, bool, int | None, str | None]] = {
    # name: (orders, followed, hint, follow, order, refused contains)
    "no_order_nothing": ({}, 0, None, False, None, None),
    "another_devices_order_nothing": ({"pump-1": {"order": 1, "expires": LATER}}, 0, None, False, None, None),
    "new_order_followed": ({DEVICE: {"order": 1, "expires": LATER}}, 0, None, True, 1, None),
    "newer_order_followed": ({DEVICE: {"order": 3, "expires": LATER}}, 2, None, True, 3, None),
    "followed_order_stays_quiet": ({DEVICE: {"order": 2, "expires": LATER}}, 2, None, False, 2, None),
    "expired_order_refused": ({DEVICE: {"order": 1, "expires": EARLIER}}, 0, None, False, 1, "expired at"),
    "no_expiry_refused": ({DEVICE: {"order": 1}}, 0, None, False, 1, "no valid expiry"),
    "garbage_expiry_refused": (
        {DEVICE: {"order": 1, "expires": "soon"}},
        0,
        None,
        False,
        1,
        "no valid expiry",
    ),
    "order_not_a_number": (
        {DEVICE: {"order": "1", "expires": LATER}},
        0,
        None,
        False,
        None,
        "no order number",
    ),
    "order_true_is_not_1": (
        {DEVICE: {"order": True, "expires": LATER}},
        0,
        None,
        False,
        None,
        "no order number",
    ),
    "order_not_an_object": ({DEVICE: [1]}, 0, None, False, None, "not an object"),
    "unsigned_hint_refused": ({}, 0, 1, False, 1, "order 1 refused: not signed by the hub"),
    "hint_beyond_signed_refused": (
        {DEVICE: {"order": 1, "expires": LATER}},
        1,
        5,
        False,
        1,
        "order 5 refused: not signed",
    ),
    "replayed_hint_refused": (
        {DEVICE: {"order": 2, "expires": LATER}},
        2,
        2,
        False,
        2,
        "order 2 refused: replayed",
    ),
    "replayed_hint_but_new_signed_order_followed": (
        {DEVICE: {"order": 3, "expires": LATER}},
        2,
        2,
        True,
        3,
        "order 2 refused: replayed",
    ),
    "hint_matching_new_signed_order_followed": (
        {DEVICE: {"order": 1, "expires": LATER}},
        0,
        1,
        True,
        1,
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_decide_recalibration_table(name: str) -> None:
    orders, followed, hint, follow, order, refused = TABLE[name]
    d = decide_recalibration(orders, DEVICE, followed=followed, now_ms=NOW_MS, hint=hint)
    assert d.follow is follow
    assert d.order == order
    if refused is None:
        assert d.refused is None
    else:
        assert d.refused is not None
        assert refused in d.refused


def test_hub_and_edge_name_the_same_signed_field() -> None:
    assert RECALIBRATE_FIELD == HUB_FIELD


# ----------------------------------------------------------------------------- hub and updater, real TUF


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    lab = Lab(tmp_path)
    lab.publish(lab.bundle("1"))
    return lab


def test_signed_orders_reach_the_device_through_verified_metadata(lab: Lab) -> None:
    signed = set_recalibration(
        lab.repo,
        GROUP,
        [DEVICE],
        lab.signers,
        reason="discharge_pressure shifted",
        evidence={DEVICE: {"sd": 9}},
    )
    assert signed[DEVICE].order == 1
    installed = lab.device().update()
    assert installed.recalibrations[DEVICE]["order"] == 1
    assert installed.recalibrations[DEVICE]["evidence"] == {"sd": 9}
    assert installed.recalibrations[DEVICE]["reason"] == "discharge_pressure shifted"
    again = set_recalibration(lab.repo, GROUP, [DEVICE, "pump-2"], lab.signers, reason="again")
    assert (again[DEVICE].order, again["pump-2"].order) == (2, 1)
    assert {d: o.order for d, o in recalibration_orders(lab.repo, GROUP).items()} == {DEVICE: 2, "pump-2": 1}
    assert lab.device().update().recalibrations[DEVICE]["order"] == 2
    lab.publish(lab.bundle("2"))  # a later release keeps the orders
    assert lab.device().update().recalibrations[DEVICE]["order"] == 2


def test_hub_refuses_a_malformed_device_id(lab: Lab) -> None:
    with pytest.raises(errors.ConfigError, match="not a device id"):
        set_recalibration(lab.repo, GROUP, ["../etc"], lab.signers, reason="x")
    with pytest.raises(errors.ConfigError, match="at least one device"):
        set_recalibration(lab.repo, GROUP, [], lab.signers, reason="x")


def _newest_role_file(lab: Lab) -> Path:
    """The newest version of the role that signs the group's targets (delegated per group)."""
    return max(lab.repo.metadata_dir.glob(f"*.{GROUP}.json"), key=lambda p: int(p.name.split(".")[0]))


def test_an_order_added_after_signing_is_refused_by_tuf(lab: Lab) -> None:
    lab.device().update()  # the device trusts the current metadata
    set_recalibration(lab.repo, GROUP, ["pump-2"], lab.signers, reason="for another pump")
    path = _newest_role_file(lab)
    doc = json.loads(path.read_bytes())
    doc["signed"][RECALIBRATE_FIELD][GROUP][DEVICE] = {"order": 1, "expires": "2099-01-01T00:00:00Z"}
    path.write_text(json.dumps(doc))  # the forger cannot sign: the old signature no longer matches
    with pytest.raises(
        errors.UntrustedSignatureError, match="signed by a key the trusted root does not name"
    ):
        lab.device().update()


# ----------------------------------------------------------------------------- the agent's updating room


@dataclass
class Room(UpdatingRoom):
    """The updating room on a real updater; recommissioning recorded instead of gathering readings."""

    lab: Lab
    wall_s: float = field(default_factory=time.time)
    recommissioned: list[int] = field(default_factory=list)
    reports: list[str | None] = field(default_factory=list)
    inbox: queue.Queue[bytes] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self.updater = self.lab.device()  # type: ignore[assignment]
        self.device_id = DEVICE
        self.state_dir = self.lab.tmp / "agent"
        self.state_dir.mkdir(exist_ok=True)
        self.config = SimpleNamespace(agent=SimpleNamespace(clock="wall"))  # type: ignore[assignment]
        self._wall = lambda: self.wall_s
        self._now_ms = 0
        self._persist = self._read_persist()
        self._desired = None
        self._refused = {}
        self.counts = {}
        self.last_update_error = None
        self.uplink = SimpleNamespace(desired=self.inbox)  # type: ignore[assignment]
        self.slots = SimpleNamespace(current=lambda: SimpleNamespace(model_version=1))  # type: ignore[assignment]

    def recalibrate(self) -> None:
        self.recommissioned.append(int(self._persist["recalibration_order"]))

    def _install(self, folder: Path, version: str) -> None:
        self.slots = SimpleNamespace(current=lambda: SimpleNamespace(model_version=int(version)))  # type: ignore[assignment]

    def _report_state(self, *, force: bool = False) -> None:
        self.reports.append(self.last_update_error)

    def deliver(self, doc: dict[str, Any]) -> None:
        self.inbox.put(json.dumps(doc).encode())
        assert self._take_desired()
        self.check_for_update()


def test_agent_follows_each_signed_order_once_and_remembers_across_restarts(lab: Lab) -> None:
    room = Room(lab)
    room.check_for_update()
    assert room.recommissioned == []
    set_recalibration(lab.repo, GROUP, [DEVICE], lab.signers, reason="local shift")
    room.check_for_update()
    room.check_for_update()  # the order stays in the metadata: not followed twice
    assert room.recommissioned == [1]
    assert room.last_update_error is None
    restarted = Room(lab)  # a new process reads the persisted number
    restarted.check_for_update()
    assert restarted.recommissioned == []
    set_recalibration(lab.repo, GROUP, [DEVICE], lab.signers, reason="shifted again")
    restarted.check_for_update()
    assert restarted.recommissioned == [2]
    assert restarted.counts["recalibrations"] == 1


def test_agent_refuses_an_unsigned_recalibrate_hint_and_says_why(lab: Lab) -> None:
    room = Room(lab)
    room.deliver({"version": None, "recalibrate": 1})
    assert room.recommissioned == []
    assert "recalibration order 1 refused: not signed by the hub" in str(room.last_update_error)
    assert "recalibration order 1 refused" in str(room.reports[-1])
    assert room.counts["recalibrations_refused"] == 1
    room.check_for_update()  # the next check, the retained message unchanged: still said, counted once
    assert "recalibration order 1 refused: not signed by the hub" in str(room.last_update_error)
    assert room.counts["recalibrations_refused"] == 1
    room.deliver({"recalibrate": "drop table"})
    assert "recalibration hint 'drop table' refused: not an order number" in str(room.last_update_error)
    assert room.recommissioned == []


def test_agent_refuses_a_replayed_hint_but_follows_the_hubs_new_order(lab: Lab) -> None:
    room = Room(lab)
    set_recalibration(lab.repo, GROUP, [DEVICE], lab.signers, reason="first")
    room.deliver({"recalibrate": 1})
    assert room.recommissioned == [1]
    assert room.last_update_error is None
    room.deliver({"recalibrate": 1})  # the same message, replayed on the broker
    assert room.recommissioned == [1]
    assert "recalibration order 1 refused: replayed (order 1 was already followed)" in str(
        room.last_update_error
    )
    set_recalibration(lab.repo, GROUP, [DEVICE], lab.signers, reason="second")
    room.deliver({"recalibrate": 2})
    assert room.recommissioned == [1, 2]


def test_a_device_that_first_sees_an_expired_order_refuses_it(lab: Lab) -> None:
    set_recalibration(lab.repo, GROUP, [DEVICE], lab.signers, reason="old", ttl_s=3600)
    room = Room(lab, wall_s=time.time() + 2 * 3600)  # set up two hours later, no memory of orders
    room.check_for_update()
    assert room.recommissioned == []
    assert "recalibration order 1 refused: expired at" in str(room.last_update_error)


def test_the_update_child_process_carries_the_orders(lab: Lab) -> None:
    set_recalibration(lab.repo, GROUP, [DEVICE], lab.signers, reason="via the child")
    root = lab.tmp / "root.json"
    root.write_bytes(lab.trusted_root)
    job = UpdateJob(
        trusted_root=str(root),
        repository=str(lab.tmp / "repo"),
        state_dir=str(lab.tmp / "child" / "tuf"),
        install_dir=str(lab.tmp / "child" / "downloads"),
        group=GROUP,
        target=TARGET,
        agent_version="1.2.0",
    )
    result = ChildUpdater(job, timeout_s=120).update(None, running=None)
    assert result.recalibrations[DEVICE]["order"] == 1
    assert result.recalibrations[DEVICE]["reason"] == "via the child"
    in_process = ChildUpdater(job, in_process=True).update(None, running=None)
    assert in_process.recalibrations == result.recalibrations
