"""The device agent: sources, model, alarms, updater, outbox, drift, state reports.

The agent (:class:`Agent`, ``pumpops agent run``; settings :class:`AgentConfig`
in ``_config.py``) is a thin loop (``_agent.py``) over rooms: scoring
(``_scoring.py``, the loaded model in ``_model.py``), calibration and
commissioning (``_calibrating.py``), reporting (``_reporting.py``) and
updating (``_updating.py``), sharing the state of ``_state.py``. Updating
uses the updater (:class:`EdgeUpdater`), which installs only what the hub's
TUF repository signed, from a URL or a folder (:class:`FolderFetcher`), and
the A/B slot installer (:class:`Slots`) whose health check
(:func:`measure_health`, :func:`decide_health`) decides whether a new model
may become current. The scoring path's pure parts: :class:`WindowBuffer` (the
model's input window), :class:`AlarmLogic` (the bundle's alarm rule, one
score at a time) and :func:`commission` / :class:`Commissioner` (a device's
own calibration). The bundle format, the detector manifest and the agent
message envelope are the contracts hub and device share: they live in
:mod:`pumpops.schema`.

The edge rule (one rule, written once; docs/architecture.md and the
import-linter contract say the same, ``tests/edge/test_edge_imports.py``
checks it): ``pumpops.edge`` imports only ``schema``, ``errors``, ``fleet``,
``sources``, ``sim``, ``mqtt``, ``_atomic``, ``_install``, ``_digest``, ``_lazy`` and
its own modules (plus numpy, onnxruntime, paho-mqtt; python-tuf only while updating)
— never store, pipeline, registry, release, telemetry, hub, cli,
scikit-learn, MLflow, SQLAlchemy, FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.edge._agent import AGENT_VERSION, RECALIBRATE_FILE, Agent
    from pumpops.edge._alarms import ALARM_RULES, AlarmLogic, AlarmStep
    from pumpops.edge._commission import Commissioner, commission
    from pumpops.edge._config import AgentConfig, load_agent_config, write_starting_agent_toml
    from pumpops.edge._drift import (
        Cusum,
        DriftMonitor,
        DriftReport,
        PageHinkley,
        PsiWindow,
        psi,
        reference_bins,
    )
    from pumpops.edge._fetchers import FOLDER_BASE_URL, FolderFetcher
    from pumpops.edge._health import HealthDecision, HealthMeasurements, decide_health, measure_health
    from pumpops.edge._outbox import (
        OUTBOX_DROP_ORDER,
        OUTBOX_KINDS,
        Outbox,
        OutboxEntry,
        OutboxMessage,
        choose_drops,
    )
    from pumpops.edge._run import agent_argv, exec_agent
    from pumpops.edge._slots import POINTER_FILE, SLOT_NAMES, Slots, SlotState, other_slot
    from pumpops.edge._updater import (
        CURRENT_FILE,
        INTENT_FIELD,
        BundleInfo,
        Choice,
        EdgeUpdater,
        Installed,
        SignedIntent,
        choose_version,
        convert_tuf_error,
        parse_version,
    )
    from pumpops.edge._window import WindowBuffer

#: Where each public name lives: loaded on first use, so that importing the package
#: (as ``pumpops --help`` and the edge agent do) loads only what is used.
_LAZY: dict[str, str] = {
    "AGENT_VERSION": "pumpops.edge._agent",
    "RECALIBRATE_FILE": "pumpops.edge._agent",
    "Agent": "pumpops.edge._agent",
    "AgentConfig": "pumpops.edge._config",
    "load_agent_config": "pumpops.edge._config",
    "write_starting_agent_toml": "pumpops.edge._config",
    "ALARM_RULES": "pumpops.edge._alarms",
    "AlarmLogic": "pumpops.edge._alarms",
    "AlarmStep": "pumpops.edge._alarms",
    "Commissioner": "pumpops.edge._commission",
    "commission": "pumpops.edge._commission",
    "Cusum": "pumpops.edge._drift",
    "DriftMonitor": "pumpops.edge._drift",
    "DriftReport": "pumpops.edge._drift",
    "PageHinkley": "pumpops.edge._drift",
    "PsiWindow": "pumpops.edge._drift",
    "psi": "pumpops.edge._drift",
    "reference_bins": "pumpops.edge._drift",
    "FOLDER_BASE_URL": "pumpops.edge._fetchers",
    "FolderFetcher": "pumpops.edge._fetchers",
    "HealthDecision": "pumpops.edge._health",
    "HealthMeasurements": "pumpops.edge._health",
    "decide_health": "pumpops.edge._health",
    "measure_health": "pumpops.edge._health",
    "OUTBOX_DROP_ORDER": "pumpops.edge._outbox",
    "OUTBOX_KINDS": "pumpops.edge._outbox",
    "Outbox": "pumpops.edge._outbox",
    "OutboxEntry": "pumpops.edge._outbox",
    "OutboxMessage": "pumpops.edge._outbox",
    "choose_drops": "pumpops.edge._outbox",
    "agent_argv": "pumpops.edge._run",
    "exec_agent": "pumpops.edge._run",
    "POINTER_FILE": "pumpops.edge._slots",
    "SLOT_NAMES": "pumpops.edge._slots",
    "Slots": "pumpops.edge._slots",
    "SlotState": "pumpops.edge._slots",
    "other_slot": "pumpops.edge._slots",
    "CURRENT_FILE": "pumpops.edge._updater",
    "BundleInfo": "pumpops.edge._updater",
    "Choice": "pumpops.edge._updater",
    "INTENT_FIELD": "pumpops.edge._updater",
    "SignedIntent": "pumpops.edge._updater",
    "choose_version": "pumpops.edge._updater",
    "EdgeUpdater": "pumpops.edge._updater",
    "Installed": "pumpops.edge._updater",
    "convert_tuf_error": "pumpops.edge._updater",
    "parse_version": "pumpops.edge._updater",
    "WindowBuffer": "pumpops.edge._window",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)


__all__ = [
    "AGENT_VERSION",
    "ALARM_RULES",
    "CURRENT_FILE",
    "FOLDER_BASE_URL",
    "INTENT_FIELD",
    "OUTBOX_DROP_ORDER",
    "OUTBOX_KINDS",
    "POINTER_FILE",
    "RECALIBRATE_FILE",
    "SLOT_NAMES",
    "Agent",
    "AgentConfig",
    "AlarmLogic",
    "AlarmStep",
    "BundleInfo",
    "Choice",
    "Commissioner",
    "Cusum",
    "DriftMonitor",
    "DriftReport",
    "EdgeUpdater",
    "FolderFetcher",
    "HealthDecision",
    "HealthMeasurements",
    "Installed",
    "Outbox",
    "OutboxEntry",
    "OutboxMessage",
    "PageHinkley",
    "PsiWindow",
    "SignedIntent",
    "SlotState",
    "Slots",
    "WindowBuffer",
    "agent_argv",
    "choose_drops",
    "choose_version",
    "commission",
    "convert_tuf_error",
    "decide_health",
    "exec_agent",
    "load_agent_config",
    "measure_health",
    "other_slot",
    "parse_version",
    "psi",
    "reference_bins",
    "write_starting_agent_toml",
]
