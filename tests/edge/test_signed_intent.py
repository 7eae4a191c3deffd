"""Signed intent for updates (issue 13, rows 3, 4, 5 and 8's rollback): MQTT ``desired`` is a hint.

Three levels, each against what it decides:

- :func:`choose_version`, the pure decision, as a table;
- :class:`EdgeUpdater` against a real repository on disk (the ``_lab`` lab:
  real ``TufRepository``, real python-tuf client);
- the agent's updating room (``_take_desired`` and ``check_for_update``) on
  that updater, fed retained ``desired`` payloads as the broker delivers them,
  with the A/B slots stood in by a recorder (installing a real model is
  tested in tests/agent).

The hub's side (a rollout that rolls back signs the pin before it publishes
the hint) is tested in tests/rollout/test_rollout_signed_intent.py.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _lab import GROUP, Lab

from pumpops import errors
from pumpops.edge import INTENT_FIELD, SignedIntent, choose_version
from pumpops.edge._updating import UpdatingRoom
from pumpops.release import INTENT_FIELD as HUB_INTENT_FIELD
from pumpops.release import UpdateIntent

# ----------------------------------------------------------------------------- the pure decision


@dataclass(frozen=True)
class Case:
    hint: str | None
    intent: SignedIntent
    version: str
    refused: str | None = None
    available: tuple[str, ...] = ("1", "2", "3")
    running: str | None = "3"


CASES = {
    "no_hint_newest": Case(None, SignedIntent(), "3"),
    "hint_equal_to_running": Case("3", SignedIntent(), "3"),
    "hint_newer_than_running_is_followed": Case("3", SignedIntent(), "3", running="2"),
    "hint_holds_below_newest_when_not_older": Case("2", SignedIntent(), "2", running="2"),
    "row3_unsigned_downgrade_refused": Case("1", SignedIntent(), "3", "downgrade to 1 not signed by the hub"),
    "row5_unknown_version_takes_newest": Case("999", SignedIntent(), "3", "has no bundle 999"),
    "row5_garbage_hint_takes_newest": Case("'; drop", SignedIntent(), "3", "has no bundle '; drop"),
    "signed_pin_rolls_back_without_hint": Case(None, SignedIntent(pinned="1"), "1"),
    "signed_pin_rolls_back_with_its_hint": Case("1", SignedIntent(pinned="1"), "1"),
    "hint_against_the_pin_refused": Case("3", SignedIntent(pinned="2"), "2", "pins group G to 2"),
    "floor_refuses_hint_below_it": Case(
        "1", SignedIntent(rollback_floor="2"), "3", "below the signed rollback"
    ),
    "floor_hides_older_versions": Case(None, SignedIntent(rollback_floor="2"), "2", available=("1", "2")),
    "first_install_follows_any_signed_hint": Case("1", SignedIntent(), "1", running=None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_choose_version_table(name: str) -> None:
    case = CASES[name]
    choice = choose_version(
        case.available, running=case.running, hint=case.hint, intent=case.intent, where="group G"
    )
    assert choice.version == case.version
    if case.refused is None:
        assert choice.hint_refused is None
    else:
        assert choice.hint_refused is not None
        assert case.refused in choice.hint_refused
        assert choice.hint_refused.startswith(f"desired version {case.hint} refused: ")


@pytest.mark.parametrize(
    ("available", "intent", "error", "says"),
    [
        ((), SignedIntent(), errors.NotFoundError, "no bundle for group G"),
        (
            ("1",),
            SignedIntent(rollback_floor="2"),
            errors.NotFoundError,
            "at or above the signed rollback floor 2",
        ),
        (("1", "2"), SignedIntent(pinned="5"), errors.NotFoundError, "pins group G to 5"),
        (("1", "2"), SignedIntent(pinned="1", rollback_floor="2"), errors.IntegrityError, "below its floor"),
    ],
)
def test_choose_version_without_a_signed_choice_installs_nothing(
    available: tuple[str, ...], intent: SignedIntent, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        choose_version(available, running="2", hint=None, intent=intent, where="group G")


def test_hub_and_edge_name_the_same_signed_field() -> None:
    assert INTENT_FIELD == HUB_INTENT_FIELD == "x-pumpops-intent"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({INTENT_FIELD: {GROUP: "pin 1"}}, "not an object"),
        ({INTENT_FIELD: {GROUP: {"pinned": "one"}}}, "dotted integers"),
        ({INTENT_FIELD: [GROUP, {"pinned": "1"}]}, "not an object of groups"),
    ],
)
def test_malformed_signed_intent_is_an_integrity_error(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(errors.IntegrityError, match=says):
        SignedIntent.from_fields(fields, GROUP)


# ----------------------------------------------------------------------------- the updater, real TUF


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    lab = Lab(tmp_path)
    lab.publish(lab.bundle("1"), lab.bundle("2"), lab.bundle("3"))
    assert lab.device().update().version == "3"
    return lab


def test_row3_retained_downgrade_is_refused_and_reported(lab: Lab) -> None:
    installed = lab.device().update("1")
    assert (installed.version, installed.changed) == ("3", False)
    assert installed.hint_refused is not None
    assert "desired version 1 refused: downgrade to 1 not signed by the hub" in installed.hint_refused
    assert sorted(p.name for p in (lab.tmp / "device" / "models").iterdir()) == ["3", "CURRENT"]


def test_row5_unknown_version_does_not_freeze_updates(lab: Lab) -> None:
    device = lab.device()
    first = device.update("999")
    assert first.version == "3"
    assert first.hint_refused is not None
    assert "no bundle 999" in first.hint_refused
    lab.publish(lab.bundle("4"))  # the bogus hint still stands: the next release installs all the same
    nxt = device.update("999")
    assert (nxt.version, nxt.changed) == ("4", True)


def test_signed_pin_rolls_back_then_lifting_it_returns_to_the_newest(lab: Lab) -> None:
    device = lab.device()
    lab.repo.set_intent(GROUP, UpdateIntent(pinned="1", reason="rollout r-1 rolls back"), lab.signers)
    assert lab.repo.intent(GROUP).pinned == "1"
    assert device.signed_intent().pinned == "1"
    back = device.update()
    assert (back.version, back.changed, back.hint_refused) == ("1", True, None)
    assert device.update("3").version == "1"  # a hint cannot undo the hub's signed rollback
    lab.repo.set_intent(GROUP, UpdateIntent(pinned=None), lab.signers)
    again = device.update()
    assert (again.version, again.changed) == ("3", True)


def test_signed_floor_keeps_every_device_above_it(lab: Lab) -> None:
    lab.repo.set_intent(GROUP, UpdateIntent(rollback_floor="3"), lab.signers)
    with pytest.raises(errors.ConfigError, match="below the rollback floor 3"):
        UpdateIntent(pinned="2", rollback_floor="3")
    refused = lab.device().update("2")
    assert refused.version == "3"
    assert refused.hint_refused is not None
    assert "below the signed rollback floor 3" in refused.hint_refused


def test_hub_refuses_to_pin_what_it_never_published(lab: Lab) -> None:
    with pytest.raises(errors.NotFoundError, match="version 9 is not published for group north-sea"):
        lab.repo.set_intent(GROUP, UpdateIntent(pinned="9"), lab.signers)
    assert lab.repo.intent(GROUP) == UpdateIntent()


def test_a_new_release_keeps_the_signed_pin(lab: Lab) -> None:
    lab.repo.set_intent(GROUP, UpdateIntent(pinned="2"), lab.signers)
    lab.publish(lab.bundle("4"))
    assert lab.repo.intent(GROUP).pinned == "2"
    assert lab.device().update().version == "2"


# ----------------------------------------------------------------------------- the agent's updating room


@dataclass
class Room(UpdatingRoom):
    """The updating room on a real updater; slots and uplink stood in, the state report recorded."""

    lab: Lab
    reports: list[dict[str, Any]] = field(default_factory=list)
    installs: list[str] = field(default_factory=list)
    inbox: queue.Queue[bytes] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self.updater = self.lab.device()
        self.state_dir = self.lab.tmp / "agent"
        self.state_dir.mkdir(exist_ok=True)
        self.config = SimpleNamespace(agent=SimpleNamespace(clock="wall"))  # type: ignore[assignment]
        self._wall = lambda: 1_765_000_000.0
        self._now_ms = 0
        self._persist = self._read_persist()
        self._desired = self._persist.get("desired_version")
        self._refused = {}
        self.counts = {}  # the agent's counters (update checks ok/failed)
        self.last_update_error = None
        self.uplink = SimpleNamespace(desired=self.inbox)  # type: ignore[assignment]
        installed = self.updater.installed()
        version = None if installed is None else installed.version
        self.slots = SimpleNamespace(  # type: ignore[assignment]
            current=lambda: None if version is None else SimpleNamespace(model_version=int(version))
        )

    def _install(self, folder: Path, version: str) -> None:
        self.installs.append(version)
        self.slots = SimpleNamespace(current=lambda: SimpleNamespace(model_version=int(version)))  # type: ignore[assignment]

    def _report_state(self, *, force: bool = False) -> None:
        self.reports.append({"desired_version": self._desired, "last_update_error": self.last_update_error})

    def deliver(self, payload: bytes) -> None:
        """What the broker hands the uplink for a retained ``desired`` (empty: cleared)."""
        self.inbox.put(payload)
        assert self._take_desired()
        self.check_for_update()

    def persisted(self) -> dict[str, Any]:
        return dict(json.loads((self.state_dir / "agent.json").read_bytes()))


def _desired(version: object) -> bytes:
    return json.dumps({"rollout_id": "forged", "version": version}).encode()


ROWS: dict[str, tuple[Callable[[Room], None], str, str | None]] = {
    # row: (what the outsider does, the version running afterwards, what the state reports)
    "row3_retained_downgrade": (
        lambda r: r.deliver(_desired(1)),
        "3",
        "downgrade to 1 not signed by the hub",
    ),
    "row4_downgrade_then_cleared": (
        lambda r: (r.deliver(_desired(1)), r.deliver(b"")),
        "3",
        None,
    ),
    "row5_unknown_version": (lambda r: r.deliver(_desired("999")), "3", "has no bundle 999"),
    "row5_not_a_version": (lambda r: r.deliver(_desired({"$gt": 1})), "3", "refused"),
    "nested_desired_is_ignored": (lambda r: r.deliver(b'{"version": [[[[1]]]]}'), "3", "has no bundle"),
}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_agent_refuses_the_outsiders_desired_and_says_why(lab: Lab, name: str) -> None:
    attack, running, reported = ROWS[name]
    room = Room(lab)
    attack(room)
    assert room.installs == []
    assert room.updater.installed().version == running  # type: ignore[union-attr]
    last = room.reports[-1]
    if reported is None:
        assert last == {"desired_version": None, "last_update_error": None}
    else:
        assert reported in str(last["last_update_error"])
    assert "desired_version" not in room.persisted()  # nothing unsigned survives a restart


def test_agent_row5_then_a_new_release_still_installs(lab: Lab) -> None:
    room = Room(lab)
    room.deliver(_desired("999"))
    lab.publish(lab.bundle("4"))
    room.check_for_update()  # the next scheduled check, the bogus hint still retained
    assert room.installs == ["4"]
    assert "has no bundle 999" in str(room.last_update_error)


def test_agent_follows_a_signed_rollback_and_a_cleared_desired_returns_to_newest(lab: Lab) -> None:
    room = Room(lab)
    lab.repo.set_intent(GROUP, UpdateIntent(pinned="1", reason="rollback"), lab.signers)
    room.deliver(_desired(1))
    assert room.installs == ["1"]
    assert room.reports[-1] == {"desired_version": "1", "last_update_error": None}
    lab.repo.set_intent(GROUP, UpdateIntent(pinned=None), lab.signers)
    room.deliver(b"")  # the hub clears the retained hint
    assert room.installs == ["1", "3"]
    assert room.reports[-1] == {"desired_version": None, "last_update_error": None}


def test_agent_drops_a_desired_version_an_older_agent_persisted(lab: Lab) -> None:
    (lab.tmp / "agent").mkdir()
    (lab.tmp / "agent" / "agent.json").write_text(json.dumps({"desired_version": "1"}))
    room = Room(lab)
    room.check_for_update()
    assert room.installs == []  # the stale pin is a hint at most: no downgrade
    assert "downgrade to 1 not signed" in str(room.last_update_error)
    assert "desired_version" not in room.persisted()
