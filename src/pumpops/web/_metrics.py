"""``GET /metrics``: the hub in Prometheus' text format (prometheus-client).

Two sources. In-process counters and histograms, kept by this process: API
requests and their server time (by route), store write latency of the ingest
running in this process (:class:`StoreWriteTimer`), and ingest's own counters
(messages received, stored, rejected, dead-lettered...). And, read from the
store at scrape time (so they are right whichever process did the work, and
survive restarts): devices by condition, dead letters by reason, agent messages
by kind (alarms raised), rollouts by status, open fleet alerts, retraining
steps by outcome, active tokens by role. A scrape whose store read fails
answers ``pumpops_store_up 0`` instead of failing. The registry is per
application, so two apps in one process (tests) do not share counters.
May import: prometheus_client, fastapi, errors, this part.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pumpops.errors import PumpopsError
from pumpops.web._queries import CONDITIONS, device_condition

if TYPE_CHECKING:
    from pumpops.web._context import ApiContext

__all__ = ["CONTENT_TYPE_LATEST", "HubMetrics", "StoreWriteTimer"]

_log = logging.getLogger("pumpops.web")

#: Ingest counters exported as ``pumpops_ingest_<name>_total``.
_INGEST_COUNTERS = (
    "received",
    "committed",
    "stored_messages",
    "agent_messages",
    "stored_readings",
    "duplicates",
    "id_conflicts",
    "rejected_messages",
    "rejected_readings",
    "dead_letters",
    "store_errors",
    "connects",
)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StoreWriteTimer:
    """Times store writes into ``pumpops_store_write_seconds{operation}``.

    Wraps a store for ingest: ``write_batches``, ``put_agent_messages`` and
    ``write_dead_letters`` are timed, every other attribute is the store's own.
    """

    _TIMED = frozenset({"write_batches", "put_agent_messages", "write_dead_letters"})

    def __init__(self, store: Any, histogram: Histogram) -> None:
        self._store = store
        self._histogram = histogram

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name not in self._TIMED:
            return attribute
        observe = self._histogram.labels(operation=name).observe

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                observe(time.perf_counter() - started)

        return timed


class _StoreCollector:
    """Collects at scrape time what the store knows."""

    def __init__(self, context: ApiContext, fleet_view: Callable[[ApiContext], Any]) -> None:
        self._context = context
        self._fleet_view = fleet_view

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "pumpops_store_up", "Whether the last scrape could read the store (1) or not (0)."
        )
        try:
            families = list(self._from_store())
        except PumpopsError as exc:
            _log.warning("metrics: cannot read the store: %s", exc)
            up.add_metric([], 0)
            yield up
            yield from self._ingest()
            return
        up.add_metric([], 1)
        yield up
        yield from families
        yield from self._ingest()

    def _from_store(self) -> Iterator[Metric]:
        counts = self._context.store.grouped_counts()
        view = self._fleet_view(self._context)
        devices = GaugeMetricFamily(
            "pumpops_devices", "Devices by condition (offline, stale, ...).", labels=["condition"]
        )
        by_condition = dict.fromkeys(CONDITIONS, 0)
        for device in view.devices:
            by_condition[device_condition(device)] += 1
        for condition, n in by_condition.items():
            devices.add_metric([condition], n)
        yield devices
        raised = GaugeMetricFamily(
            "pumpops_alarms_raised_window",
            "Alarms raised in the monitoring window, from the agents' summaries.",
            labels=["group"],
        )
        for group in view.groups:
            raised.add_metric([group.group], group.alarms.alarms_raised)
        yield raised
        yield _family(
            CounterMetricFamily,
            "pumpops_dead_letters",
            "Dead letters stored, by reason.",
            "reason",
            counts["dead_letters"],
        )
        yield _family(
            CounterMetricFamily,
            "pumpops_agent_messages",
            "Agent messages stored, by kind (alarm: raised or cleared).",
            "kind",
            counts["agent_messages"],
        )
        yield _family(
            GaugeMetricFamily, "pumpops_rollouts", "Rollouts by status.", "status", counts["rollouts"]
        )
        yield _family(
            GaugeMetricFamily,
            "pumpops_fleet_alerts_open",
            "Open fleet alerts, by kind.",
            "kind",
            counts["fleet_alerts_open"],
        )
        retrain = {action.removeprefix("retrain."): n for action, n in counts["audit_retrain"].items()}
        yield _family(
            CounterMetricFamily,
            "pumpops_retrain_steps",
            "Retraining steps and outcomes recorded in the audit trail.",
            "step",
            retrain,
        )
        yield _family(
            GaugeMetricFamily,
            "pumpops_api_tokens_active",
            "API tokens neither revoked nor expired, by role.",
            "role",
            counts["api_tokens_active"],
        )

    def _ingest(self) -> Iterator[Metric]:
        source = self._context.ingest_stats
        if source is None:
            return
        stats = source()
        values: dict[str, Any] = asdict(stats) if is_dataclass(stats) and not isinstance(stats, type) else {}
        for name in _INGEST_COUNTERS:
            if name in values:
                family = CounterMetricFamily(
                    f"pumpops_ingest_{name}", f"Ingest in this process: {name.replace('_', ' ')}."
                )
                family.add_metric([], float(values[name]))
                yield family
        if "connected" in values:
            connected = GaugeMetricFamily(
                "pumpops_ingest_connected", "Whether ingest is connected to the broker."
            )
            connected.add_metric([], 1.0 if values["connected"] else 0.0)
            yield connected


def _family(kind: Any, name: str, text: str, label: str, values: dict[str, int]) -> Metric:
    family = kind(name, text, labels=[label])
    for key, n in sorted(values.items()):
        family.add_metric([key], n)
    metric: Metric = family
    return metric


class HubMetrics:
    """The hub's metrics registry: in-process histograms plus the store collector.

    Args:
        context: the API context (its store and ingest counters are read at scrape time).
        fleet_view: how to get the (cached) fleet view.
    """

    def __init__(self, context: ApiContext, fleet_view: Callable[[ApiContext], Any]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "pumpops_api_request_seconds",
            "Server time of API requests, by route template, method and status.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.store_writes = Histogram(
            "pumpops_store_write_seconds",
            "Time of store writes by ingest in this process, by operation.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(context, fleet_view))

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
