# ruff: noqa: F811 - the fixtures are imported from tests/agent/_agent_world
"""Issue 13 rows 3, 4, 5 against a real ``pumpops agent run`` process, Mosquitto and ``pumpops hub serve``.

An outsider publishes retained ``desired`` messages with a plain MQTT
client (the ``Listener`` of tests/agent's world); the agent replays SKAB
``valve1/0.csv`` each run and reports on ``state``. The hub then signs the
rollback with ``pumpops tuf intent``, and the same hint is followed. The
world (a trained SKAB model released as versions 1 and 2, the hub process,
the agent processes) is tests/agent/_agent_world.py's.
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


def test_agent_process_refuses_the_outsiders_desired_and_follows_the_signed_rollback(
    hub: Hub, released: Released, make_agent: Any
) -> None:
    hub.publish(released.bundles[1], released.bundles[2])
    agent, listener = make_agent()
    assert listener is not None
    assert agent.run() == 0, agent.log()
    assert agent.state()["model_version"] == 2

    # Row 3: a retained downgrade from someone on the broker is refused, with the reason on `state`.
    listener.desire("skoltech", DEVICE, 1)
    assert agent.run() == 0, agent.log()
    state = agent.state()
    assert state["model_version"] == 2
    assert "desired version 1 refused: downgrade to 1 not signed by the hub" in state["last_update_error"]

    # Row 5: a version that does not exist is reported and freezes nothing.
    listener.desire("skoltech", DEVICE, 999)
    assert agent.run() == 0, agent.log()
    state = agent.state()
    assert state["model_version"] == 2
    assert "has no bundle 999" in state["last_update_error"]
    assert "NotFoundError" not in state["last_update_error"]  # the check itself succeeded

    # The hub signs the rollback: the same hint is now followed.
    hub.cli("tuf", "intent", GROUP, "--pin", "1", "--reason", "v2 misbehaves")
    listener.desire("skoltech", DEVICE, 1)
    assert agent.run() == 0, agent.log()
    state = agent.state()
    assert (state["model_version"], state["last_update_error"]) == (1, None)

    # Row 4: the pin lifted and the retained message cleared: back to the newest signed version.
    hub.cli("tuf", "intent", GROUP, "--unpin")
    topic = f"{agent.prefix}/skoltech/{DEVICE}/desired"
    listener.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    assert agent.run() == 0, agent.log()
    state = agent.state()
    assert (state["model_version"], state["desired_version"], state["last_update_error"]) == (2, None, None)
    persisted = json.loads((agent.state_dir / "agent.json").read_bytes())
    assert "desired_version" not in persisted  # nothing from MQTT survives a restart
