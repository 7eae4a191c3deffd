# ruff: noqa: F811 - the fixtures are imported from tests/agent/_agent_world
"""Signed recalibration (issue 15, tier 1) against a real ``pumpops agent run`` process, Mosquitto and a hub.

An outsider's MQTT ``desired`` naming a recalibration order is refused with
the reason on ``state``; the hub signs an order with ``pumpops tuf
recalibrate``, and the agent recommissions on it once (the order number is
persisted), then refuses the same order replayed on the broker.
The world is tests/agent/_agent_world.py's (as test_signed_intent_process.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))
from _agent_world import (  # type: ignore[import-not-found]
    DEVICE,
    GROUP,
    Hub,
    Released,
    hub,  # noqa: F401 - fixture
    make_agent,  # noqa: F401 - fixture
    released,  # noqa: F401 - fixture
)

pytestmark = pytest.mark.timeout(400)


def _hint(listener: Any, agent: Any, doc: dict[str, Any]) -> None:
    topic = f"{agent.prefix}/skoltech/{DEVICE}/desired"
    listener.client.publish(topic, json.dumps(doc), qos=1, retain=True).wait_for_publish(5)


def test_agent_process_follows_only_the_hubs_signed_recalibration(
    hub: Hub, released: Released, make_agent: Any
) -> None:
    hub.publish(released.bundles[1])
    agent, listener = make_agent()
    assert listener is not None
    assert agent.run() == 0, agent.log()

    # An outsider on the broker asks for a recalibration: refused, said on `state`.
    _hint(listener, agent, {"version": None, "recalibrate": 1})
    assert agent.run() == 0, agent.log()
    state = agent.state()
    assert "recalibration order 1 refused: not signed by the hub" in str(state["last_update_error"])
    persisted = json.loads((agent.state_dir / "agent.json").read_bytes())
    assert "recalibration_order" not in persisted

    # The hub signs the order: the agent recommissions on it.
    hub.cli("devices", "register", "--device-id", DEVICE, "--site", "skoltech", "--profile", "skab-testbed",
            "--group", GROUP)  # fmt: skip
    out = hub.cli("tuf", "recalibrate", GROUP, DEVICE, "--reason", "valve sensor replaced", "--json")
    assert json.loads(out)["orders"][DEVICE]["order"] == 1
    assert agent.run() == 0, agent.log()
    assert "recalibrating on the hub's signed order 1 (valve sensor replaced)" in agent.log()
    persisted = json.loads((agent.state_dir / "agent.json").read_bytes())
    assert persisted["recalibration_order"] == 1
    assert "refused" not in str(
        agent.state()["last_update_error"]
    )  # the retained hint is order 1: signed now

    # The same order again (still in the metadata, still retained on the broker): replayed, not followed.
    assert agent.run() == 0, agent.log()
    assert agent.log().count("recalibrating on the hub's signed order 1") == 1
    assert "recalibration order 1 refused: replayed" in str(agent.state()["last_update_error"])
