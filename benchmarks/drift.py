"""Per-pump drift verdicts on a simulated fleet: the autocorrelation-aware shift test against PSI.

Run: ``.venv/bin/python benchmarks/drift.py [--devices 24] [--seeds 3]`` (about a minute).

Each seed simulates a fleet (``pumpops.sim``, every make, constant ambient per
site, no random events) for ``--reference-h`` hours of normal calibration
followed by ``--live-h`` hours of live data. After ``--onset-h`` live hours,
explicit events start and last to the end: per six pumps, one sensor
recalibration (an offset of ``--offset`` times the sensor's reference mean on
``discharge_pressure``), one set-point change (speed ratio 0.8), one fault
(``--fault``, gradual, severity 0.8); the other three stay normal. Every
trace is put on the agent's 1 s grid (linear interpolation of SI values).

Both tests see the same reports: every ``--report-every`` rows, the last
``--window`` rows against the reference period —

- **PSI** (the old device verdict): a pump drifts when a sensor's PSI against the
  reference deciles is above 0.25 (``pumpops.edge.psi``, ``reference_bins``);
- **shift** (``ShiftTest``, alpha ``--alpha`` per report, Holm across sensors);
- **shift + score**: the same, but a window whose median model score is over
  the threshold is ``fault_like`` (the device's hint), not drift. The model is
  a stand-in fitted on the reference (:class:`PcaScore`: PCA residual of
  standardised rows, threshold its 99.5th percentile), not a pumpops bundle.

Per pump, the verdict is "drift" when any report after the onset (any report of
the live period for pumps without an event) alerts. Truth: pumps with a benign
drift event are positives; normal pumps and faulty pumps are negatives (a fault
is an alarm, not drift). Printed per method: precision, recall, false-alarm rate per report on
normal pumps (and its ratio to alpha), detection delay after onset, whether the
recalibrated sensor was named, and the PSI/shift ratio of false alarms.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pumpops.edge import psi, reference_bins
from pumpops.edge._shift import ShiftTest
from pumpops.monitoring import DeviceShift, DriftPolicy, judge_shifts
from pumpops.sim import DriftKind, Event, FaultKind, FleetSimulator, Onset, Scenario, build_fleet, to_epoch_ms

START_MS = to_epoch_ms("2025-06-01T00:00:00Z")
PSI_ALERT = 0.25
LEVELS = np.linspace(0.0, 1.0, 11)


@dataclass
class Outcome:
    """One method's verdicts over a run."""

    tp: int = 0
    fp_normal: int = 0
    fp_fault: int = 0
    fn: int = 0
    reports_normal: int = 0
    alerts_normal: int = 0
    delays_s: list[float] = field(default_factory=list)
    named: int = 0
    recalibrations: int = 0

    @property
    def precision(self) -> float:
        flagged = self.tp + self.fp_normal + self.fp_fault
        return self.tp / flagged if flagged else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")


def grid(ts_ms: np.ndarray, values: np.ndarray, start_ms: int, rows: int) -> np.ndarray:
    """SI columns put on a 1 s grid from ``start_ms`` (linear interpolation, like the agent's resampler)."""
    t = start_ms + 1000 * np.arange(rows)
    return np.column_stack([np.interp(t, ts_ms, values[:, j]) for j in range(values.shape[1])])


def psi_alerts(reference: np.ndarray, window: np.ndarray) -> list[int]:
    """Columns whose PSI of the window against the reference deciles is above PSI_ALERT."""
    out = []
    for j in range(reference.shape[1]):
        edges, expected = reference_bins(np.quantile(reference[:, j], LEVELS))
        counts = np.bincount(np.searchsorted(edges, window[:, j], side="left"), minlength=expected.size)
        if psi(counts, expected) > PSI_ALERT:
            out.append(j)
    return out


class PcaScore:
    """A stand-in for the device's model: PCA residual (Q statistic) of standardised rows.

    Fitted on the reference; ``ratio(window)`` is the window's median score over the
    reference's 99.5th percentile (the "alarm threshold"), the device's ``score_ratio``.
    """

    def __init__(self, reference: np.ndarray, keep: float = 0.95) -> None:
        self.center = reference.mean(axis=0)
        self.scale = reference.std(axis=0) + 1e-12
        z = (reference - self.center) / self.scale
        _, sv, vt = np.linalg.svd(z, full_matrices=False)
        k = int(np.searchsorted(np.cumsum(sv**2) / np.sum(sv**2), keep)) + 1
        self.basis = vt[:k].T
        self.threshold = float(np.quantile(self._score(reference), 0.995))

    def _score(self, rows: np.ndarray) -> np.ndarray:
        z = (rows - self.center) / self.scale
        residual = z - (z @ self.basis) @ self.basis.T
        return np.asarray(np.sum(residual**2, axis=1))

    def ratio(self, window: np.ndarray) -> float:
        return float(np.median(self._score(window))) / self.threshold


def events_for(devices: Sequence[object], args: argparse.Namespace, means: dict[str, float]) -> list[Event]:
    onset = START_MS + int((args.reference_h + args.onset_h) * 3_600_000)
    end = START_MS + int((args.reference_h + args.live_h) * 3_600_000) + 60_000
    events = []
    for i, device in enumerate(devices):
        dev = device.device_id  # type: ignore[attr-defined]
        role = i % 6
        if role == 0:
            offset = args.offset * means[dev]
            events.append(Event(dev, DriftKind.SENSOR_RECALIBRATION, onset, end,
                                sensor="discharge_pressure", offset=offset))  # fmt: skip
        elif role == 1:
            events.append(Event(dev, DriftKind.SETPOINT_CHANGE, onset, end, speed_ratio=0.8))
        elif role == 2:
            events.append(Event(dev, FaultKind(args.fault), onset, end, onset=Onset.GRADUAL, severity=0.8))
    return events


def run_seed(
    seed: int, args: argparse.Namespace, outcomes: dict[str, Outcome], hub: dict[str, Counter[str]]
) -> None:
    fleet = build_fleet(args.devices, seed=seed)
    ref_rows = int(args.reference_h * 3600)
    total_rows = int((args.reference_h + args.live_h) * 3600)
    onset_row = ref_rows + int(args.onset_h * 3600)
    first = Scenario(devices=fleet, start_ms=START_MS, duration_s=600.0, seed=seed,
                     fault_rate_per_day=0.0, drift_rate_per_day=0.0, ambient=None)  # fmt: skip
    sim = FleetSimulator(first)
    means = {
        d.device_id: float(np.mean(sim.device(d.device_id).trace().si("discharge_pressure"))) for d in fleet
    }
    events = events_for(fleet, args, means)
    scenario = Scenario(devices=fleet, start_ms=START_MS, duration_s=total_rows + 60.0, seed=seed,
                        fault_rate_per_day=0.0, drift_rate_per_day=0.0, ambient=None,
                        events=tuple(events))  # fmt: skip
    sim = FleetSimulator(scenario)
    kinds = {e.device_id: e for e in events}
    last: dict[str, list[DeviceShift]] = {}
    for device in fleet:
        trace = sim.device(device.device_id).trace()
        sensors = trace.sensors
        x = grid(trace.ts_ms, np.column_stack([trace.si(s) for s in sensors]), START_MS, total_rows)
        reference, event = x[:ref_rows], kinds.get(device.device_id)
        test = ShiftTest(sensors, reference, window_rows=args.window, alpha=args.alpha)
        model = PcaScore(reference)
        ends = range(ref_rows + args.report_every, total_rows + 1, args.report_every)
        verdicts: dict[str, list[tuple[int, list[int]]]] = {"PSI": [], "shift": [], "shift + score": []}
        for end in ends:
            window = x[end - args.window : end]
            verdicts["PSI"].append((end, psi_alerts(reference, window)))
            shifted = [j for j, s in enumerate(test.test(window)) if s.fired]
            verdicts["shift"].append((end, shifted))
            # The hint: a window whose median model score is over the threshold is fault-like, not drift.
            verdicts["shift + score"].append((end, shifted if model.ratio(window) <= 1.0 else []))
        # The hub's view: each pump's last report (shift test, hint from the number of sensors).
        names = tuple(sensors[j] for j in verdicts["shift"][-1][1])
        hint = (
            "none"
            if not names
            else "sensor_shift"
            if len(names) <= max(1, len(sensors) // 4)
            else "operating_shift"
        )
        last.setdefault(device.group, []).append(DeviceShift(device.device_id, 0, names, hint))
        for method, reports in verdicts.items():
            out = outcomes[method]
            if event is None:
                out.reports_normal += len(reports)
                out.alerts_normal += sum(1 for _, cols in reports if cols)
                out.fp_normal += any(cols for _, cols in reports)
                continue
            after = [(end, cols) for end, cols in reports if end - args.window >= onset_row]
            fired = [(end, cols) for end, cols in after if cols]
            if event.kind in FaultKind:
                out.fp_fault += bool(fired)
                continue
            if fired:
                out.tp += 1
                out.delays_s.append(fired[0][0] - onset_row)
            else:
                out.fn += 1
            if event.kind is DriftKind.SENSOR_RECALIBRATION:
                out.recalibrations += 1
                out.named += bool(fired) and sensors.index("discharge_pressure") in fired[0][1]
    for group, devices in last.items():
        verdict = judge_shifts(group, devices, now_ms=0, policy=DriftPolicy())
        for d in devices:
            truth = kinds[d.device_id].kind.value if d.device_id in kinds else "normal"
            hub.setdefault(truth, Counter())[verdict.devices[d.device_id]] += 1


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devices", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--reference-h", type=float, default=4.0, help="hours of normal calibration")
    parser.add_argument("--live-h", type=float, default=8.0, help="live hours after the calibration")
    parser.add_argument("--onset-h", type=float, default=3.25, help="live hours before the events start")
    parser.add_argument("--window", type=int, default=500, help="rows in a live window (agent default)")
    parser.add_argument("--report-every", type=int, default=3600, help="rows between reports (agent default)")
    parser.add_argument("--alpha", type=float, default=0.01, help="shift test false-alarm rate per report")
    parser.add_argument("--offset", type=float, default=0.02, help="recalibration offset / sensor mean")
    parser.add_argument("--fault", default="bearing_wear", choices=[k.value for k in FaultKind])
    args = parser.parse_args(argv)
    outcomes = {"PSI": Outcome(), "shift": Outcome(), "shift + score": Outcome()}
    hub: dict[str, Counter[str]] = {}
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        run_seed(seed, args, outcomes, hub)
    wall = time.perf_counter() - t0
    print(f"# drift verdicts: {args.seeds} seed(s) x {args.devices} pumps, reference {args.reference_h:g} h, "
          f"live {args.live_h:g} h (events from +{args.onset_h:g} h), window {args.window} rows, "
          f"report every {args.report_every} rows, alpha {args.alpha:g}")  # fmt: skip
    machine = f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu"
    print(f"# {machine}, python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {wall:.0f} s")  # fmt: skip
    print()
    print("| method | precision | recall | normal pumps flagged | faulty pumps flagged "
          "| false alarms / report (normal) | / alpha | delay median, max (min) "
          "| recalibrated sensor named |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for method, o in outcomes.items():
        normal_pumps = o.reports_normal // max(len(range(int(args.reference_h * 3600) + args.report_every,
                                                         int((args.reference_h + args.live_h) * 3600) + 1,
                                                         args.report_every)), 1)  # fmt: skip
        rate = o.alerts_normal / o.reports_normal if o.reports_normal else float("nan")
        delays = np.asarray(o.delays_s) / 60.0
        delay = f"{np.median(delays):.0f}, {delays.max():.0f}" if delays.size else "-"
        print(f"| {method} | {o.precision:.2f} | {o.recall:.2f} | {o.fp_normal}/{normal_pumps} | "
              f"{o.fp_fault}/{args.seeds * sum(1 for i in range(args.devices) if i % 6 == 2)} | "
              f"{rate:.4f} ({o.alerts_normal}/{o.reports_normal}) | {rate / args.alpha:.1f} | {delay} | "
              f"{o.named}/{o.recalibrations} |")  # fmt: skip
    psi_rate = outcomes["PSI"].alerts_normal / max(outcomes["PSI"].reports_normal, 1)
    shift_rate = outcomes["shift"].alerts_normal / max(outcomes["shift"].reports_normal, 1)
    ratio = psi_rate / shift_rate if shift_rate else float("inf")
    print(f"\nfalse alarms per report on normal pumps, PSI / shift: {ratio:.1f}x")
    verdict_names = ("group_drift", "device_local", "fault", "ok")
    print(
        "\nThe hub's verdict per pump at the end (judge_shifts, default DriftPolicy, hint without a score):\n"
    )
    print("| truth | " + " | ".join(verdict_names) + " |")
    print("|---|" + "---|" * len(verdict_names))
    for truth, counts in sorted(hub.items()):
        print(f"| {truth} | " + " | ".join(str(counts[v]) for v in verdict_names) + " |")


if __name__ == "__main__":
    main()
