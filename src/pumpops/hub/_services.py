"""The hub's background services (ingest, monitoring, retraining, rollouts) and the HTTP API's context.

``pumpops hub serve --services`` runs them beside the HTTP server, each in a
thread with its own store connection; each can also run as its own process
(``pumpops ingest``, ``pumpops fleet evaluate`` from cron, ``pumpops rollout
run``). On the embedded default the MQTT broker (amqtt) runs in a process of
its own (:func:`broker_process`): in the hub's process, training would starve it.
:func:`api_context` builds what the HTTP API (``pumpops.web``) runs on from the
same settings: the store, the event sink, a rollout service per acting token.
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pumpops.audit import workspace_signer
from pumpops.errors import PumpopsError, ServiceError
from pumpops.hub._supervise import stop_processes, tail
from pumpops.hub._wiring import (
    event_publisher,
    event_sink,
    ingest_service,
    intent_signer,
    registry_for,
    rollout_publishers,
    rollout_service,
    service_address,
)
from pumpops.monitoring import DRIFT_ALERT_KIND, MonitoringService
from pumpops.registry import EventSink
from pumpops.retrain import GroupFacts, decide_retrain, respond_to_shifts, run_retrain
from pumpops.rollout import MqttDesiredPublisher, RolloutService
from pumpops.settings import EMBEDDED_BROKER, Settings
from pumpops.store import RetentionPolicy, TelemetryStore, open_store
from pumpops.telemetry import BrokerAddress, IngestService, parse_broker_url

if TYPE_CHECKING:
    from pumpops.registry import Registry
    from pumpops.web import ApiContext

__all__ = ["BrokerProcess", "HubServices", "api_context", "broker_process", "port_taken_message"]

log = logging.getLogger("pumpops.hub")


@dataclass(frozen=True)
class BrokerProcess:
    """The running embedded broker's process.

    Attributes:
        port: the port it listens on (127.0.0.1).
        proc: the process.
        log: its output.
    """

    port: int
    proc: subprocess.Popen[bytes]
    log: Path


def port_taken_message(port: int) -> str:
    """What to do when the embedded broker's port is taken."""
    holder = " (1883 is the port of a system Mosquitto)" if port == 1883 else ""
    return (
        f"cannot start the embedded MQTT broker: port {port} on 127.0.0.1 is already in use{holder}. "
        "Set embedded_broker_port in pumpops.toml "
        "(or PUMPOPS_EMBEDDED_BROKER_PORT) to a free port, or set broker_url to "
        f"mqtt://127.0.0.1:{port} to use the broker that holds it"
    )


def _check_bind(port: int) -> None:
    """Bind 127.0.0.1:``port`` as the broker will (SO_REUSEADDR, as asyncio does); raise if taken."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ServiceError(port_taken_message(port)) from exc


_BROKER_CODE = """\
import signal, sys, threading
from pathlib import Path
from pumpops.telemetry import EmbeddedBroker
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
b = EmbeddedBroker(port=int(sys.argv[1])).start()
ready = Path(sys.argv[2])
ready.with_suffix(".tmp").write_text(str(b.port))
ready.with_suffix(".tmp").replace(ready)
print(f"embedded MQTT broker listening on 127.0.0.1:{b.port}", flush=True)
stop.wait()
b.stop()
print("embedded MQTT broker stopped", flush=True)
"""


@contextlib.contextmanager
def broker_process(port: int, log_file: Path, *, timeout_s: float = 20.0) -> Iterator[BrokerProcess]:
    """Run the embedded broker (amqtt) in a child process on 127.0.0.1:``port`` until the block ends.

    The child runs in its own process group and is stopped (SIGTERM, then SIGKILL)
    when the block ends, however it ends. ``port`` 0 picks a free port (see
    :attr:`BrokerProcess.port`): race-free, unlike choosing one beforehand.
    It counts as started only once the child itself reports that it listens, never
    because something else answers on the port.

    Raises:
        ServiceError: the port is taken, or it did not start within ``timeout_s`` (with its last output).
    """
    if port:
        _check_bind(port)
    ready = log_file.with_name(log_file.stem + ".port")
    ready.unlink(missing_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", _BROKER_CODE, str(int(port)), str(ready)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while not ready.is_file():
            if proc.poll() is not None:
                text = tail(log_file)
                if "address already in use" in text.lower():
                    raise ServiceError(port_taken_message(port))
                raise ServiceError(
                    f"the embedded broker exited (code {proc.returncode}); last lines of {log_file}:\n{text}"
                )
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"the embedded broker did not start within {timeout_s:g} s; last lines of "
                    f"{log_file}:\n{tail(log_file)}"
                )
            time.sleep(0.05)
        handle = BrokerProcess(int(ready.read_text(encoding="utf-8")), proc, log_file)
        log.info("embedded MQTT broker started on 127.0.0.1:%d (pid %d)", handle.port, proc.pid)
        yield handle
    finally:
        stop_processes([proc])
        ready.unlink(missing_ok=True)
        log.info("embedded MQTT broker stopped")


class HubServices:
    """Ingest, monitoring, the retrain policy, the rollout controller and retention as threads.

    Args:
        settings: the workspace settings (database, broker, topic prefix, monitoring, retrain).
        monitoring_interval_s: seconds between monitoring steps.
        retrain_interval_s: seconds between retraining decisions.
        rollout_interval_s: seconds between rollout controller ticks.
        wrap_ingest_store: wraps ingest's store (the API's write timer for ``/metrics``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        monitoring_interval_s: float = 60.0,
        retrain_interval_s: float = 300.0,
        rollout_interval_s: float = 30.0,
        wrap_ingest_store: Callable[[TelemetryStore], TelemetryStore] | None = None,
    ) -> None:
        self.settings = settings
        self._wrap = wrap_ingest_store
        self.intervals = {
            "monitoring": monitoring_interval_s,
            "retrain": retrain_interval_s,
            "rollout": rollout_interval_s,
            "retention": settings.retention.interval_s,
        }
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._exit = contextlib.ExitStack()
        self.steps: dict[str, int] = {"monitoring": 0, "retrain": 0, "rollout": 0, "retention": 0}
        self.errors: dict[str, str] = {}
        self.broker: BrokerProcess | None = None
        self.ingest: IngestService | None = None

    def _address(self) -> tuple[str, int, str]:

        address = parse_broker_url(self.settings.broker_url)
        if address is None:  # embedded
            return "127.0.0.1", self.settings.embedded_broker_port, EMBEDDED_BROKER
        return address.host, address.port, self.settings.broker_url

    def start(self) -> HubServices:
        """Start the broker (embedded default), ingest and the four loops; log each start.

        Raises:
            ServiceError: the embedded broker cannot bind its port (taken by another broker),
                or a service did not start; what had started is stopped again.
        """
        host, port, url = self._address()
        try:
            if url == EMBEDDED_BROKER:
                try:
                    self.broker = self._exit.enter_context(
                        broker_process(port, self.settings.workspace / "broker.log")
                    )
                except ServiceError:
                    log.error("embedded MQTT broker failed to start (port %d)", port)
                    raise
            store = self._exit.enter_context(self._open_store())
            store.upgrade()
            writes = store if self._wrap is None else self._wrap(store)
            ingest = ingest_service(self.settings, writes, BrokerAddress(host, port)).start()
            self.ingest = ingest
            self._exit.callback(self._stop_ingest, ingest)
            ingest.wait_ready()
            log.info(
                "ingest started (broker mqtt://%s:%d, topics %s/#)", host, port, self.settings.topic_prefix
            )
            for name, body in (
                ("monitoring", self._monitoring_step),
                ("retrain", self._retrain_step),
                ("rollout", self._rollout_step),
                ("retention", self._retention_step),
            ):
                thread = threading.Thread(
                    target=self._loop, args=(name, body), name=f"hub-{name}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
                log.info("%s loop started (every %g s)", name, self.intervals[name])
            watcher = threading.Thread(target=self._watch, name="hub-watch", daemon=True)
            watcher.start()
            self._threads.append(watcher)
        except BaseException:
            self.stop()
            raise
        log.info("hub services started (broker %s, store %s)", url, self.settings.resolved_database_url)
        return self

    def stop(self) -> None:
        """Stop the loops, then ingest and the broker; log each stop."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
            if thread.name != "hub-watch":
                log.info("%s loop stopped", thread.name.removeprefix("hub-"))
        self._threads = []
        self._exit.close()

    @staticmethod
    def _stop_ingest(ingest: IngestService) -> None:
        stats = ingest.stop()
        log.info("ingest stopped (%d messages stored)", stats.stored_messages)

    def __enter__(self) -> HubServices:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _watch(self) -> None:
        """Log, once each, the embedded broker's death and an ingest failure."""
        said: set[str] = set()
        while not self._stop.wait(1.0):
            broker = self.broker
            if broker is not None and "broker" not in said and broker.proc.poll() is not None:
                said.add("broker")
                self.errors["broker"] = f"exited with code {broker.proc.returncode}"
                log.error(
                    "embedded MQTT broker failed: exited with code %s; last lines of %s:\n%s",
                    broker.proc.returncode,
                    broker.log,
                    tail(broker.log),
                )
            ingest = self.ingest
            if ingest is not None and "ingest" not in said and ingest.failed is not None:
                said.add("ingest")
                self.errors["ingest"] = str(ingest.failed)
                log.error("ingest failed: %s", ingest.failed)

    def _open_store(self) -> TelemetryStore:
        """The workspace's store; the audit entries the services append are signed with its key (ADR 0013)."""
        return open_store(
            self.settings.resolved_database_url, audit_signer=workspace_signer(self.settings.workspace)
        )

    def _loop(self, name: str, body: Callable[[TelemetryStore], None]) -> None:

        with self._open_store() as store:  # one connection per thread
            while not self._stop.is_set():
                try:
                    body(store)
                    self.steps[name] += 1
                    self.errors.pop(name, None)
                except PumpopsError as exc:  # a store or broker outage: the loop outlives it
                    self.errors[name] = str(exc)
                    log.error("%s step failed, trying again in %g s: %s", name, self.intervals[name], exc)
                except Exception as exc:  # a bug: say so loudly, keep the other services up
                    self.errors[name] = repr(exc)
                    log.exception(
                        "%s step failed unexpectedly, trying again in %g s", name, self.intervals[name]
                    )
                self._stop.wait(self.intervals[name])

    def _sink(self, store: TelemetryStore) -> EventSink:
        return event_sink(self.settings, store)

    def _monitoring_step(self, store: TelemetryStore) -> None:

        MonitoringService(store, self._sink(store), self.settings.monitoring).evaluate()

    def _rollout_service(self, store: TelemetryStore) -> RolloutService:

        host, port, _ = self._address()
        return RolloutService(
            store,
            MqttDesiredPublisher(service_address(self.settings, "rollout", BrokerAddress(host, port))),
            events=self._sink(store),
            actor=self.settings.actor,
            topic_prefix=self.settings.topic_prefix,
            intent=intent_signer(self.settings, store),
        )

    def _rollout_step(self, store: TelemetryStore) -> None:
        self._rollout_service(store).tick()

    def _retention_step(self, store: TelemetryStore) -> None:
        """`pumpops db prune` as a loop step (`[retention]`): first at start, creating partitions ahead."""
        policy = RetentionPolicy(**self.settings.retention.model_dump(exclude={"interval_s"}))
        report = store.prune(policy, actor=self.settings.actor)
        if report.audit_seq is not None:
            kinds = ", ".join(f"{k.kind} {k.rows}" for k in report.kinds if k.rows or k.partitions)
            log.info("retention pruned %s (audit entry %d)", kinds, report.audit_seq)

    def _retrain_step(self, store: TelemetryStore) -> None:
        """The tiered response (recalibrate a device, retrain a group, keep alarming), then retraining.

        Both run only with ``retrain.enabled``: recalibration orders are signed by
        :func:`~pumpops.retrain.respond_to_shifts` (each step audited as ``tier.*``
        with its evidence); a group whose shift is shared is retrained by the policy
        with the shift's onset, so the candidate faces the post-drift gate.
        """
        policy = self.settings.retrain
        if not policy.enabled:
            return
        now_us = int(time.time() * 1_000_000)
        sink = self._sink(store)
        responses = MonitoringService(store, sink, self.settings.monitoring).responses(now_us)
        for done in respond_to_shifts(
            self.settings, store, now_us, actor=self.settings.actor, responses=responses, sink=sink
        ):
            log.warning(
                "tiered response %s: %s%s",
                done.action.tier,
                done.action.reason,
                "" if done.error is None else f" (not signed: {done.error})",
            )
        last_run: dict[str, int] = {}
        for entry in store.audit_entries():
            if entry.action == "retrain.started":
                last_run[entry.subject.removeprefix("group/")] = entry.time_us
        for group in sorted({d.group for d in store.devices()}):
            alerts = [
                a for a in store.fleet_alerts(group=group, open_only=True) if a.kind == DRIFT_ALERT_KIND
            ]
            service = self._rollout_service(store)
            under_way = [state for _, state in service.rollouts(group=group, active_only=True)]
            response = responses.get(group)
            shared = response is not None and response.retrain_group
            onsets = list(response.verdict.since_ms.values()) if shared and response is not None else []
            facts = GroupFacts(
                group=group,
                now_us=now_us,
                drift_alert_open=bool(alerts) or shared,
                drift_onset_us=min(onsets) * 1000 if onsets else None,
                drift_alert_opened_us=max((a.opened_at_us for a in alerts), default=None),
                last_run_us=last_run.get(group),
                new_feedback=len(store.feedback(since_us=last_run.get(group))),
                rollout_active=bool(under_way),
                rollout_gate_paused=bool(under_way) and all(st.paused_by_gate for st in under_way),
            )
            decision = decide_retrain(facts, policy)
            if not decision.run:
                continue

            def start(ref: str, g: str, waves: Sequence[int], service: RolloutService = service) -> str:
                return service.start(ref, g, tuple(waves), reason="retrained", supersede_gate_paused=True)

            outcome = run_retrain(
                self.settings,
                group,
                trigger=decision.trigger or "schedule",
                actor=self.settings.actor,
                policy=policy,
                until_us=now_us,
                start_rollout=start,
                drift_onset_us=decision.drift_onset_us if decision.trigger == "drift" else None,
            )
            log.warning(
                "retraining %s (%s): %s — %s", group, decision.trigger, outcome.status, outcome.reason
            )


@contextlib.contextmanager
def api_context(settings: Settings, store: TelemetryStore) -> Iterator[ApiContext]:
    """What the HTTP API runs on, built from the settings: closed (the broker client) when the block ends.

    Events are stored and published on the settings' broker; rollout commands
    write desired states there too (the embedded broker: its port on 127.0.0.1),
    each by a :class:`~pumpops.rollout.RolloutService` whose actor is the
    request's token owner. The registry (MLflow) opens on first use.
    """
    from pumpops.web import ApiContext  # noqa: PLC0415 - FastAPI loads only when serving

    desired, events = rollout_publishers(settings, None)
    sink = event_sink(settings, store, event_publisher(settings, None))
    registry: list[Registry] = []
    lock = threading.Lock()

    def open_registry() -> Registry:
        with lock:
            if not registry:
                registry.append(registry_for(settings, sink))
            return registry[0]

    def rollouts(actor: str) -> RolloutService:
        return rollout_service(settings, store, desired, events, actor=actor)

    try:
        yield ApiContext(settings=settings, store=store, sink=sink, rollouts=rollouts, registry=open_registry)
    finally:
        desired.close()
