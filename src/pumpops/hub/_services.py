"""The hub's background services: ingest, fleet monitoring, the retraining policy, the rollout controller.

``pumpops hub serve --services`` runs them beside the HTTP server, each in a
thread with its own store connection; each can also run as its own process
(``pumpops ingest``, ``pumpops fleet evaluate`` from cron, ``pumpops rollout
run``). On the embedded default the MQTT broker (amqtt) runs in a process of
its own (:func:`broker_process`): in the hub's process, training would starve it.
May import: every hub-side part.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pumpops.errors import PumpopsError, ServiceError
from pumpops.monitoring._service import DRIFT_ALERT_KIND, MonitoringService
from pumpops.registry import EventSink
from pumpops.retrain._chain import run_retrain
from pumpops.retrain._policy import GroupFacts, decide_retrain
from pumpops.rollout._service import MqttDesiredPublisher, RolloutService
from pumpops.settings import EMBEDDED_BROKER, Settings
from pumpops.store import TelemetryStore, open_store
from pumpops.telemetry import BrokerAddress, IngestService, parse_broker_url

__all__ = ["HubServices", "broker_process"]

log = logging.getLogger("pumpops.hub")


@contextlib.contextmanager
def broker_process(port: int, log_file: Path) -> Iterator[None]:
    """Run the embedded broker (amqtt) in a child process on 127.0.0.1:``port`` until the block ends.

    Raises:
        ServiceError: it did not accept connections within 20 s (its output is in ``log_file``).
    """
    code = (
        "import signal, threading; from pumpops.telemetry import EmbeddedBroker\n"
        f"b = EmbeddedBroker(port={int(port)}).start(); e = threading.Event()\n"
        "signal.signal(signal.SIGTERM, lambda *a: e.set()); e.wait(); b.stop()\n"
    )
    with log_file.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                raise ServiceError(f"the embedded broker exited (code {proc.returncode}); see {log_file}")
            time.sleep(0.1)
        else:
            raise ServiceError(f"the embedded broker did not start on port {port}; see {log_file}")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)


class HubServices:
    """Ingest, monitoring, the retrain policy and the rollout controller as threads.

    Args:
        settings: the workspace settings (database, broker, topic prefix, monitoring, retrain).
        monitoring_interval_s: seconds between monitoring steps.
        retrain_interval_s: seconds between retraining decisions.
        rollout_interval_s: seconds between rollout controller ticks.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        monitoring_interval_s: float = 60.0,
        retrain_interval_s: float = 300.0,
        rollout_interval_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.intervals = {
            "monitoring": monitoring_interval_s,
            "retrain": retrain_interval_s,
            "rollout": rollout_interval_s,
        }
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._exit = contextlib.ExitStack()
        self.steps: dict[str, int] = {"monitoring": 0, "retrain": 0, "rollout": 0}
        self.errors: dict[str, str] = {}

    def _address(self) -> tuple[str, int, str]:

        address = parse_broker_url(self.settings.broker_url)
        if address is None:  # embedded
            return "127.0.0.1", self.settings.embedded_broker_port, EMBEDDED_BROKER
        return address.host, address.port, self.settings.broker_url

    def start(self) -> HubServices:
        """Start the broker (embedded default), ingest and the three loops."""
        host, port, url = self._address()
        if url == EMBEDDED_BROKER:
            self._exit.enter_context(broker_process(port, self.settings.workspace / "broker.log"))
        store = self._exit.enter_context(open_store(self.settings.resolved_database_url))
        store.upgrade()
        ingest = IngestService(
            store,
            BrokerAddress(host, port),
            settings=self.settings.ingest,
            topic_prefix=self.settings.topic_prefix,
        ).start()
        self._exit.callback(ingest.stop)
        ingest.wait_ready()
        for name, body in (
            ("monitoring", self._monitoring_step),
            ("retrain", self._retrain_step),
            ("rollout", self._rollout_step),
        ):
            thread = threading.Thread(target=self._loop, args=(name, body), name=f"hub-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("hub services started (broker %s, store %s)", url, self.settings.resolved_database_url)
        return self

    def stop(self) -> None:
        """Stop the loops, then ingest and the broker."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        self._exit.close()

    def __enter__(self) -> HubServices:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self, name: str, body: Callable[[TelemetryStore], None]) -> None:

        with open_store(self.settings.resolved_database_url) as store:  # one connection per thread
            while not self._stop.is_set():
                try:
                    body(store)
                    self.steps[name] += 1
                    self.errors.pop(name, None)
                except PumpopsError as exc:  # a store or broker outage: the loop outlives it
                    self.errors[name] = str(exc)
                    log.error("hub %s step failed, trying again: %s", name, exc)
                self._stop.wait(self.intervals[name])

    def _sink(self, store: TelemetryStore) -> EventSink:
        return EventSink(store, None, topic_prefix=self.settings.topic_prefix)

    def _monitoring_step(self, store: TelemetryStore) -> None:

        MonitoringService(store, self._sink(store), self.settings.monitoring).evaluate()

    def _rollout_service(self, store: TelemetryStore) -> RolloutService:

        host, port, _ = self._address()
        return RolloutService(
            store,
            MqttDesiredPublisher(BrokerAddress(host, port)),
            events=self._sink(store),
            actor=self.settings.actor,
            topic_prefix=self.settings.topic_prefix,
        )

    def _rollout_step(self, store: TelemetryStore) -> None:
        self._rollout_service(store).tick()

    def _retrain_step(self, store: TelemetryStore) -> None:

        policy = self.settings.retrain
        if not policy.enabled:
            return
        now_us = int(time.time() * 1_000_000)
        last_run: dict[str, int] = {}
        for entry in store.audit_entries():
            if entry.action == "retrain.started":
                last_run[entry.subject.removeprefix("group/")] = entry.time_us
        for group in sorted({d.group for d in store.devices()}):
            alerts = [
                a for a in store.fleet_alerts(group=group, open_only=True) if a.kind == DRIFT_ALERT_KIND
            ]
            facts = GroupFacts(
                group=group,
                now_us=now_us,
                drift_alert_open=bool(alerts),
                drift_alert_opened_us=max((a.opened_at_us for a in alerts), default=None),
                last_run_us=last_run.get(group),
                new_feedback=len(store.feedback(since_us=last_run.get(group))),
                rollout_active=bool(store.rollouts(group=group, active_only=True)),
            )
            decision = decide_retrain(facts, policy)
            if not decision.run:
                continue
            service = self._rollout_service(store)

            def start(ref: str, g: str, waves: Sequence[int], service: RolloutService = service) -> str:
                return service.start(ref, g, tuple(waves), reason="retrained")

            outcome = run_retrain(
                self.settings,
                group,
                trigger=decision.trigger or "schedule",
                actor=self.settings.actor,
                policy=policy,
                until_us=now_us,
                start_rollout=start,
            )
            log.warning(
                "retraining %s (%s): %s — %s", group, decision.trigger, outcome.status, outcome.reason
            )
