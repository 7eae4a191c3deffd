"""What the agent's rooms share: configuration, clock, counters, the persisted state, the stubs between rooms.

The agent (``_agent.py``) is one object assembled from rooms, each in its own
module: scoring (``_scoring.py``), calibration (``_calibrating.py``),
reporting (``_reporting.py``) and updating (``_updating.py``). They share the
state declared on :class:`AgentBase` and call each other only through the
methods stubbed here, so each room can be read alone. This module also owns
``agent.json`` (update-check times, a pending
recalibration): read once at start, written atomically on change.
May import: edge modules, sources, errors, ``_atomic``, the stdlib.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pumpops import __version__
from pumpops._atomic import write_atomic

if TYPE_CHECKING:
    import numpy as np

    from pumpops.edge._alarms import AlarmStep
    from pumpops.edge._commission import Commissioner
    from pumpops.edge._config import AgentConfig
    from pumpops.edge._device import DeviceProfile
    from pumpops.edge._model import LoadedModel
    from pumpops.edge._outbox import Outbox
    from pumpops.edge._resample import Resampler
    from pumpops.edge._slots import Slots
    from pumpops.edge._update_child import ChildUpdater
    from pumpops.edge._uplink import Uplink
    from pumpops.sources import Frame, Source

__all__ = [
    "AGENT_VERSION",
    "KILL_AT_ENV",
    "NORMAL_PERIOD_FILE",
    "PERSIST_FILE",
    "RECALIBRATE_FILE",
    "RECENT_ROWS",
    "AgentBase",
]

AGENT_VERSION = __version__
#: Fault injection for tests: ``kill -9`` the agent itself at this install step (see ``Slots.install``).
KILL_AT_ENV = "PUMPOPS_AGENT_KILL_AT"
NORMAL_PERIOD_FILE = "normal-period.npy"
RECALIBRATE_FILE = "recalibrate.request"
PERSIST_FILE = "agent.json"
#: Rows of recent readings kept for an update's health check.
RECENT_ROWS = 4096

log = logging.getLogger("pumpops.agent")


class AgentBase:
    """The state every room of the agent reads, set up by :class:`pumpops.edge._agent.Agent`."""

    config: AgentConfig
    device_id: str
    state_dir: Path
    _wall: Callable[[], float]
    source: Source
    profile: DeviceProfile
    slots: Slots
    outbox: Outbox
    updater: ChildUpdater
    uplink: Uplink | None
    _persist: dict[str, Any]
    model: LoadedModel | None
    commissioner: Commissioner | None
    health: str
    health_reasons: list[str]
    last_update_error: str | None
    counts: dict[str, int]
    _resampler: Resampler | None
    _recent_frames: deque[Frame]
    _now_ms: int
    _next_check_ms: int
    _desired: str | None

    # ------------------------------------------------------------------ persistence

    def _read_persist(self) -> dict[str, Any]:
        path = self.state_dir / PERSIST_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_bytes())
        except ValueError:
            log.warning("%s is unreadable; starting its counters afresh", path)
            return {}
        return data if isinstance(data, dict) else {}

    def _save_persist(self) -> None:
        write_atomic(self.state_dir / PERSIST_FILE, json.dumps(self._persist, sort_keys=True).encode())

    # ------------------------------------------------------------------ time and topics

    def _clock_ms(self) -> int:
        if self.config.agent.clock == "data" and self._now_ms:
            return self._now_ms
        return int(self._wall() * 1000)

    def _topic(self, kind: str) -> str:
        a = self.config.agent
        return f"{self.config.broker.topic_prefix}/{a.site}/{a.device_id}/{kind}"

    # ------------------------------------------------------------------ between rooms (implemented there)

    def _load_current(self, *, fresh: bool) -> None:  # scoring
        raise NotImplementedError

    def _finish_commissioning(self) -> None:  # calibrating
        raise NotImplementedError

    def _calibrate_from_what_is_known(self) -> None:  # calibrating
        raise NotImplementedError

    def _normal_period(self, n_sensors: int) -> np.ndarray | None:  # calibrating
        raise NotImplementedError

    def calibration_status(self) -> str:  # calibrating
        raise NotImplementedError

    def _upload_raw(self, frame: Frame) -> None:  # reporting
        raise NotImplementedError

    def _record_score(self, ts_ms: int, score: float, finite: bool, step: AlarmStep) -> None:  # reporting
        raise NotImplementedError

    def _drift_report(self, report: dict[str, Any]) -> None:  # reporting
        raise NotImplementedError

    def _report_state(self, *, force: bool = False) -> None:  # reporting
        raise NotImplementedError

    def _rollback(self, reason: str) -> None:  # updating
        raise NotImplementedError

    def process_usage(self) -> dict[str, Any]:  # the agent
        raise NotImplementedError
