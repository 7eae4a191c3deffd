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

from pumpops.edge._alarms import ALARM_RULES, AlarmLogic, AlarmStep
from pumpops.edge._commission import Commissioner, commission
from pumpops.edge._drift import Cusum, DriftMonitor, DriftReport, PageHinkley, PsiWindow, psi, reference_bins
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
