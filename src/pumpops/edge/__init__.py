"""The device agent: sources, model, alarms, updater, outbox, drift, state reports.

The agent itself (``_agent.py``, ``pumpops agent run``; settings in ``_config.py``)
ties together: the updater (:class:`EdgeUpdater`), which installs only what the hub's
TUF repository signed, from a URL or a folder (:class:`FolderFetcher`), and the
A/B slot installer (:class:`Slots`) whose health check (:func:`measure_health`,
:func:`decide_health`) decides whether a new model may become current. The
scoring path's pure parts: :class:`WindowBuffer` (the model's input window),
:class:`AlarmLogic` (the bundle's alarm rule, one score at a time) and
:func:`commission` / :class:`Commissioner` (a device's own calibration).
May import only edge-safe parts (schema, errors, fleet, sim, sources, the bundle
format ``release._bundle``) and numpy, onnxruntime, paho-mqtt, python-tuf: never
scikit-learn, MLflow, SQLAlchemy, FastAPI or the hub-side parts (store, pipeline,
registry, the rest of release). Tests hold this line.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pumpops.edge._alarms import ALARM_RULES, AlarmLogic, AlarmStep
    from pumpops.edge._commission import Commissioner, commission
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
    from pumpops.edge._slots import POINTER_FILE, SLOT_NAMES, Slots, SlotState, other_slot
    from pumpops.edge._updater import (
        CURRENT_FILE,
        BundleInfo,
        EdgeUpdater,
        Installed,
        convert_tuf_error,
        parse_version,
    )
    from pumpops.edge._window import WindowBuffer

#: Where each public name lives: loaded on first use, so that importing the package
#: (as ``pumpops --help`` and the edge agent do) loads only what is used.
_LAZY: dict[str, str] = {
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
    "POINTER_FILE": "pumpops.edge._slots",
    "SLOT_NAMES": "pumpops.edge._slots",
    "Slots": "pumpops.edge._slots",
    "SlotState": "pumpops.edge._slots",
    "other_slot": "pumpops.edge._slots",
    "CURRENT_FILE": "pumpops.edge._updater",
    "BundleInfo": "pumpops.edge._updater",
    "EdgeUpdater": "pumpops.edge._updater",
    "Installed": "pumpops.edge._updater",
    "convert_tuf_error": "pumpops.edge._updater",
    "parse_version": "pumpops.edge._updater",
    "WindowBuffer": "pumpops.edge._window",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ALARM_RULES",
    "CURRENT_FILE",
    "FOLDER_BASE_URL",
    "OUTBOX_DROP_ORDER",
    "OUTBOX_KINDS",
    "POINTER_FILE",
    "SLOT_NAMES",
    "AlarmLogic",
    "AlarmStep",
    "BundleInfo",
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
    "SlotState",
    "Slots",
    "WindowBuffer",
    "choose_drops",
    "commission",
    "convert_tuf_error",
    "decide_health",
    "measure_health",
    "other_slot",
    "parse_version",
    "psi",
    "reference_bins",
]
