# ruff: noqa: N806 - X is the (rows x sensors) matrix, as in the detectors
"""The edge agent on this machine: scoring latency, resident memory and CPU share (issues 6 and 16).

Run: ``.venv/bin/python benchmarks/agent.py [--seconds 180]`` (or ``make bench``); about 5 minutes.

Two SKAB models are trained from ``examples/pipeline-skab.toml``
(``$PUMPOPS_SKAB_DIR``; ``pca_t2q``): with ``baseline_window_samples = 120``
(120-row windows × 8 sensors, the size issue 16's goal names) and as written
(60-row windows since issue 14). Each is packaged for
``x86_64-ipc``, published into a fresh workspace's TUF repository and
exported as a folder (no hub process). Then:

1. Per-window latency (batch 1) of the agent's scoring path — a session
   opened with the agent's options (``session_options``: no arena, no memory
   pattern, no pre-packing, one thread) and ``LoadedModel.score`` itself —
   against ``session.run`` with ready feeds and the pipeline detector's own
   numpy / scikit-learn ``score_windows``, the calls interleaved window by
   window; p50 and p99; and the largest score difference between the agent's
   options and onnxruntime's defaults (parity: must be 0 or rounding).
2. ``python -m pumpops agent run --config agent.toml --max-seconds N`` as a
   process per model (both at once, own device ids and topic prefixes); it
   hands over (``os.execv``, same pid) to the lean device process. SKAB's
   ``anomaly-free.csv`` is replayed in real time (speed 1: 8 sensors at 1 Hz, one frame a
   second) with production settings, uplink to the local Mosquitto (``none``
   if none listens). Each device was commissioned before by a fast replay, so
   the run loads the installed model and calibrates from its stored normal
   period at start; its first update check runs in a child process (its peak
   VmHWM comes back on ``state``). Steady VmRSS is sampled 10 s before the end,
   when even the 120-row model has scored for a minute; VmHWM is the peak;
   CPU is ``utime + stime`` in ``/proc/<pid>/stat`` from 130 s to the end, as
   a share of one core. Each agent loads onnxruntime from its own copy of the
   package, as on a device where it is the only process mapping it (the kernel
   does not page out library pages another process maps: see
   ``edge._usage.release_library_pages``); the same lean agent on the venv's
   onnxruntime, which dozens of processes on this machine map, is run beside
   them for comparison. The baseline in the same run: the 120-row model's
   agent started with the libraries the agent used to load imported first
   (pydantic, pydantic-settings, typer, rich, pint, python-tuf, cryptography,
   ``pumpops.cli``): the ratio is what leaving them out saves.
3. What the memory is made of: VmRSS of a fresh interpreter after each import
   the device process makes, then after building the source, the agent, and
   15 s of ``Agent.run`` (in this order; the deltas depend on it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnxruntime as ort

from pumpops.edge._health import session_options
from pumpops.edge._model import LoadedModel as _Loaded
from pumpops.fleet import get_target
from pumpops.pipeline import parse_config, run_pipeline
from pumpops.pipeline.detectors import Calibration, Detector
from pumpops.pipeline.skab import skab_canonical
from pumpops.release._package import PackageSettings, load_source, package_model
from pumpops.schema import read_bundle
from pumpops.sources import read_skab_csv

REPO = Path(__file__).resolve().parents[1]
TARGET = "x86_64-ipc"
TICK = os.sysconf("SC_CLK_TCK")
RSS_TARGET_MIB = 64.0  # armv7-controller's budgets.max_peak_memory_mb
CPU_TARGET_PCT = 1.0
#: The recording the agents replay (9,400 rows: 2.6 h at 1 Hz). A device streams its readings;
#: a replay holds its file in memory, so one file, not the 21 of the folder (37k rows, +5 MiB).
REPLAY = Path("anomaly-free") / "anomaly-free.csv"
#: The CPU window starts here (s after the process starts): both models score every second.
CPU_FROM_S = 130.0
#: What the agent used to import and no longer does (the in-run baseline loads them first).
OLD_IMPORTS = (
    "import pydantic, pydantic_settings, typer, rich.console, pint, tuf.ngclient, "
    "securesystemslib.signer, pumpops.cli"
)
NOT_LOADED = ("pydantic", "pint", "typer", "rich", "tuf", "cryptography", "securesystemslib", "pumpops.cli")
#: Models: label -> ``[features]`` changes to ``examples/pipeline-skab.toml``.
MODELS: dict[str, dict[str, Any]] = {
    "120-row window (baseline_window_samples = 120)": {"baseline_window_samples": 120},
    "example as written": {},
}

# The device process's imports in the order they are attributed, then its objects (label, statement).
STEPS = (
    (
        "interpreter and the lean entry point (ssl, _hashlib kept out: plain links)",
        "from pumpops.edge._run import skip_openssl\nskip_openssl()",
    ),
    ("numpy", "import numpy"),
    ("onnxruntime", "import onnxruntime"),
    ("paho-mqtt (without ssl: plain links)", "import paho.mqtt.client"),
    ("msgspec (settings, bundle manifest)", "import msgspec"),
    (
        "pumpops.edge._agent (the rest: sqlite3, orjson, the agent's own modules)",
        "from pumpops.edge._agent import Agent",
    ),
    (
        "SKAB replay source (anomaly-free.csv, 9.4k rows in memory: the replay's, not a device's)",
        "from pumpops.sources import SkabCsvSource\nfrom pumpops.edge._device import read_profile\n"
        "import time\n"
        "src = SkabCsvSource(pathlib.Path(DATA) / 'anomaly-free' / 'anomaly-free.csv', device_id=DEVICE, "
        "rebase_to_ms=int(time.time()) * 1000, chunk_rows=1, "
        "profile=read_profile('skab-testbed'))",
    ),
    (
        "Agent(config): slots, onnxruntime session, calibration from the normal period, outbox, uplink",
        "from pumpops.edge._config import load_agent_config\n"
        "a = Agent(load_agent_config(pathlib.Path(CONFIG)), source=src)",
    ),
    ("after Agent.run(max_seconds=15) at 1 Hz", "a.run(max_seconds=15)"),
)


@dataclass
class Device:
    """One model and the simulated device that runs it."""

    label: str
    root: Path
    model_dir: Path
    bundle: Path
    window_rows: int
    device_id: str = field(default_factory=lambda: f"bench-agent-{uuid.uuid4().hex[:8]}")
    prefix: str = field(default_factory=lambda: f"bench-agent-{uuid.uuid4().hex[:10]}/v1")
    folder: str = "device"
    #: A folder put first on ``PYTHONPATH`` holding this agent's own copy of onnxruntime (None: the venv's).
    ort_copy: Path | None = None

    @property
    def config(self) -> Path:
        return self.root / self.folder / "agent.toml"

    @property
    def state_dir(self) -> Path:
        return self.root / self.folder / "state"

    @property
    def log(self) -> Path:
        return self.root / self.folder / "agent.log"

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.state_dir / "state.json").read_bytes()))

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def command(self, seconds: float, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "pumpops", "agent", "run",
            "--config", str(self.config), "--max-seconds", f"{seconds:g}", *extra,
        ]  # fmt: skip

    def heavy_command(self, seconds: float) -> list[str]:
        """The same agent with the libraries it used to load imported first (the in-run baseline)."""
        code = (
            f"{OLD_IMPORTS}\nfrom pumpops.edge._run import main\n"
            f"raise SystemExit(main(['--config', {str(self.config)!r}, '--max-seconds', '{seconds:g}']))"
        )
        return [sys.executable, "-c", code]


def cli(workspace: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pumpops", "-w", str(workspace), *args], check=True, capture_output=True
    )


def train(label: str, data: Path, root: Path) -> Device:
    """Train and package one model; publish it and export the repository to ``root/repo``."""
    doc = tomllib.loads((REPO / "examples" / "pipeline-skab.toml").read_text())
    doc["data"]["paths"] = [str(data)]
    doc["features"].update(MODELS[label])
    work = root / "train"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        result = run_pipeline(
            parse_config(doc), workspace=work, tracking_uri=f"sqlite:///{work / 'mlflow.db'}"
        )
    source = load_source(result.model_dir, name="pumpops-skab", version=1)
    settings = PackageSettings(latency_runs=5, max_holdout_windows=300)
    _, written = package_model(
        source, [get_target(TARGET)], out=root / "bundles", data=data, settings=settings
    )
    bundle = written[0].folder
    ws = root / "hub"
    cli(ws, "init", str(ws))
    cli(ws, "keys", "init")
    staging = root / "staging"
    shutil.copytree(bundle, staging / bundle.relative_to(bundle.parents[2]))
    cli(ws, "tuf", "publish", str(staging))
    cli(ws, "tuf", "export", "--dir", str(root / "repo"))
    window_rows = read_bundle(bundle).manifest.inputs.window_rows
    return Device(label, root, result.model_dir, bundle, window_rows)


# ---------------------------------------------------------------------------- 1. scoring latency


def interleaved_us(calls: list[Callable[[np.ndarray], object]], windows: np.ndarray) -> list[np.ndarray]:
    """Per-call times (µs) of each of ``calls`` on every window, the calls taking turns."""
    for w in windows[:50]:
        for call in calls:
            call(w)
    times = np.empty((len(calls), len(windows)))
    for i, w in enumerate(windows):
        for j, call in enumerate(calls):
            t0 = time.perf_counter_ns()
            call(w)
            times[j, i] = time.perf_counter_ns() - t0
    return list(times / 1000.0)


def scoring(device: Device, data: Path, n: int) -> str:
    """One table row: the agent's path, ``session.run`` alone, and the pipeline detector in numpy."""
    bundle = read_bundle(device.bundle)
    m = bundle.manifest
    session = ort.InferenceSession(  # as the agent opens it
        str(bundle.model_path), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    plain = ort.InferenceSession(str(bundle.model_path), providers=["CPUExecutionProvider"])
    dtype = np.float32 if m.inputs.dtype == "float32" else np.float64
    detector = Detector.load(device.model_dir / "detector")
    cals = json.loads((device.model_dir / "calibrations.json").read_bytes())["devices"]
    cal = Calibration.from_dict(cals["anomaly-free/anomaly-free"])
    loaded = SimpleNamespace(  # what _Loaded.score reads, set as Agent._set_calibration does
        session=session,
        input_names=[i.name for i in session.get_inputs()],
        dtype=dtype,
        center=cal.center.astype(dtype),
        scale=cal.scale.astype(dtype),
    )
    fixed = dict(zip(loaded.input_names[1:], (loaded.center, loaded.scale), strict=True))
    _, X = skab_canonical(read_skab_csv(data / "anomaly-free" / "anomaly-free.csv"))
    windows = detector.windows(X)
    windows = np.ascontiguousarray(windows[np.arange(n) % len(windows)])

    def agent_score(w: np.ndarray) -> float:
        return _Loaded.score(loaded, w)  # type: ignore[arg-type]

    def run_only(w: np.ndarray) -> object:
        return session.run(None, {loaded.input_names[0]: w[np.newaxis], **fixed})

    def numpy_score(w: np.ndarray) -> float:
        return float(detector.score_windows(w[np.newaxis], cal)[0])

    agent, bare, ref = (
        np.percentile(t, [50, 99]) for t in interleaved_us([agent_score, run_only, numpy_score], windows)
    )
    diff = max(abs(agent_score(w) - numpy_score(w)) for w in windows[:200])

    def default_options_score(w: np.ndarray) -> float:
        feeds = {loaded.input_names[0]: w[np.newaxis].astype(dtype), **fixed}
        return float(np.asarray(plain.run(None, feeds)[0]).ravel()[0])

    parity = max(abs(agent_score(w) - default_options_score(w)) for w in windows[:500])
    return (
        f"| {device.label} | {m.inputs.window_rows} × {len(m.inputs.sensors)} {m.inputs.dtype} "
        f"| {agent[0]:.1f} | {agent[1]:.1f} | {bare[0]:.1f} | {bare[1]:.1f} | {ref[0]:.1f} | {ref[1]:.1f} "
        f"| {ref[0] / agent[0]:.2f} | {ref[1] / agent[1]:.2f} | {diff:.0e} | {parity:.0e} |"
    )


# ---------------------------------------------------------------------------- 2. the agent process


def broker_url() -> str:
    with socket.socket() as sock:
        sock.settimeout(1)
        return "mqtt://127.0.0.1:1883" if sock.connect_ex(("127.0.0.1", 1883)) == 0 else "none"


def write_agent_toml(device: Device, data: Path, url: str, *, speed: float) -> None:
    repo = device.root / "repo"
    lines = [
        "[agent]",
        f'device_id = "{device.device_id}"',
        'site = "skoltech"',
        'group = "skab-testbed"',
        'profile = "skab-testbed"',
        f'target = "{TARGET}"',
        f'state_dir = "{device.state_dir}"',
        # Commissioning replays as fast as it goes: intervals in the data's time.
        *(() if speed else ('clock = "data"', "refresh_interval_s = 60")),
        "[broker]",
        f'url = "{url}"',
        f'topic_prefix = "{device.prefix}"',
        "[repository]",
        f'folder = "{repo}"',
        f'trusted_root = "{repo / "metadata" / "1.root.json"}"',
        "[source]",
        'kind = "skab"',
        f'path = "{data / REPLAY}"',
        f"speed = {speed:g}",
        f"chunk_s = {1 if speed else 10}",
    ]
    device.config.parent.mkdir(parents=True, exist_ok=True)
    device.config.write_text("\n".join(lines) + "\n")


def commission(devices: list[Device], data: Path, url: str) -> None:
    """First start of each device: install from the repository, gather the normal period (fast replay)."""
    procs = []
    for d in devices:
        write_agent_toml(d, data, url, speed=0)
        with d.log.open("ab") as out:
            procs.append(subprocess.Popen(d.command(15, "-v"), stdout=out, stderr=subprocess.STDOUT))
    for d, proc in zip(devices, procs, strict=True):
        if proc.wait() != 0 or d.state().get("calibration") != "calibrated (device)":
            raise RuntimeError(f"commissioning {d.label} did not finish:\n{d.log_tail()}")


def proc_sample(pid: int) -> tuple[float, float, int] | None:
    """VmRSS MiB, VmHWM MiB, utime + stime ticks; None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    kb = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith("Vm")}
    if "VmRSS" not in kb:  # a zombie
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024, int(fields[11]) + int(fields[12])


def clear_retained(url: str, topics: list[str]) -> None:
    """Remove the retained ``state`` messages the runs left on the shared broker."""
    if url == "none":
        return
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-clean-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    for topic in topics:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def nearest(samples: list[Any], t: float) -> Any:
    """The sample taken nearest to ``t`` seconds."""
    return min(samples, key=lambda s: abs(s[0] - t))


def private_onnxruntime(folder: Path) -> Path:
    """A copy of the installed onnxruntime package under ``folder`` (for ``PYTHONPATH``).

    On a device the agent is the only process that maps onnxruntime's libraries; here dozens
    of processes (other agents, tests) map the venv's, and the kernel does not page out pages
    another process maps (``edge._usage.release_library_pages``). A copy is a file of its own.
    """
    shutil.copytree(Path(ort.__file__).parent, folder / "onnxruntime")
    return folder


def agent_env(device: Device) -> dict[str, str]:
    if device.ort_copy is None:
        return dict(os.environ)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(device.ort_copy), str(REPO / "src")]))


def measure(
    devices: list[Device], shared: Device, baseline: Device, data: Path, url: str, seconds: float
) -> list[dict[str, Any]]:
    """Run every device's agent at real time, at once (plus the baseline); sample /proc twice a second."""
    runs: list[tuple[Device, str, list[str]]] = [(d, "lean", d.command(seconds)) for d in devices]
    runs.append((shared, "lean, the venv's onnxruntime", shared.command(seconds)))
    runs.append((baseline, "baseline", baseline.heavy_command(seconds)))
    procs, samples = [], []
    for d, _, _ in runs:
        write_agent_toml(d, data, url, speed=1)
    t0 = time.monotonic()
    for d, _, argv in runs:
        with d.log.open("ab") as out:
            procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=agent_env(d)))
        samples.append([])
    while any(p.poll() is None for p in procs):
        for proc, got in zip(procs, samples, strict=True):
            s = proc_sample(proc.pid) if proc.poll() is None else None
            if s is not None:
                got.append((time.monotonic() - t0, *s))
        time.sleep(0.5)
    wall = time.monotonic() - t0
    clear_retained(url, [f"{d.prefix}/skoltech/{d.device_id}/state" for d, _, _ in runs])
    results = []
    for (d, kind, _), proc, got in zip(runs, procs, samples, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(
                f"the agent of {d.label} ({kind}) exited with {proc.returncode}:\n{d.log_tail()}"
            )
        start, end = nearest(got, CPU_FROM_S), nearest(got, seconds)
        state = d.state()
        usage = state.get("process", {})
        results.append(
            {
                "device": d,
                "kind": kind,
                "wall": wall,
                "rss": nearest(got, seconds - 10)[1],
                "rss_at": {t: nearest(got, t)[1] for t in (5, 15, 30, 60, 120, seconds - 10)},
                "hwm": max(s[2] for s in got),
                "cpu": (end[3] - start[3]) / TICK / (end[0] - start[0]) * 100.0,
                "cpu_window": (start[0], end[0]),
                "cpu_s": (end[3] - start[3]) / TICK,
                "counts": state.get("counts", {}),
                "status": state.get("status"),
                "calibration": state.get("calibration"),
                "child_peak": usage.get("update_check_peak_rss_mib"),
                "state_rss": usage.get("rss_mib"),
            }
        )
    return results


# ---------------------------------------------------------------------------- 3. what the memory is


def memory_steps(device: Device, data: Path) -> subprocess.Popen[str]:
    lines = [
        "import pathlib",
        "def rss():",
        "    for line in pathlib.Path('/proc/self/status').read_text().splitlines():",
        "        if line.startswith('VmRSS'):",
        "            return int(line.split()[1]) / 1024",
        f"CONFIG, DATA, DEVICE = {str(device.config)!r}, {str(data)!r}, {device.device_id!r}",
    ]
    for i, (_, statement) in enumerate(STEPS):
        lines += [statement, f"print({i}, rss(), flush=True)"]
    lines += ["import sys", f"print('loaded', *[m for m in {NOT_LOADED!r} if m in sys.modules])"]
    return subprocess.Popen(
        [sys.executable, "-c", "\n".join(lines)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=agent_env(device),
    )


def memory_result(proc: subprocess.Popen[str]) -> tuple[list[float], list[str]]:
    """The VmRSS after each step, and which of :data:`NOT_LOADED` the process did load."""
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the memory breakdown failed:\n{err[-3000:]}")
    lines = out.splitlines()
    return [float(line.split()[1]) for line in lines[:-1]], lines[-1].split()[1:]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("PUMPOPS_SKAB_DIR", REPO.parent / "shared" / "datasets" / "skab")),
    )
    parser.add_argument("--windows", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=180.0)
    args, _ = parser.parse_known_args(argv)
    args.data = args.data.resolve()  # written into each agent.toml, read relative to its folder
    if not (args.data / "anomaly-free" / "anomaly-free.csv").is_file():
        print(f"SKAB data not found under {args.data} (set PUMPOPS_SKAB_DIR); skipped")
        return 0
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"Edge agent — {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model}), "
        f"Python {platform.python_version()}, onnxruntime {ort.__version__}, "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, load average at start "
        f"{os.getloadavg()[0]:.2f}\n",
        flush=True,
    )
    url = broker_url()
    with tempfile.TemporaryDirectory(prefix="pumpops-bench-agent-") as name:
        tmp = Path(name)
        t0 = time.monotonic()
        devices = [train(label, args.data, tmp / f"m{i}") for i, label in enumerate(MODELS)]
        baseline, shared = (
            replace(
                devices[0],
                folder=folder,
                device_id=f"bench-agent-{uuid.uuid4().hex[:8]}",
                prefix=f"bench-agent-{uuid.uuid4().hex[:10]}/v1",
            )
            for folder in ("baseline", "shared")
        )
        for i, d in enumerate([*devices, baseline]):  # as on a device: their own onnxruntime
            d.ort_copy = private_onnxruntime(tmp / f"ort{i}")
        print(f"(trained, packaged, published and exported in {time.monotonic() - t0:.1f} s)\n")
        print(
            f"1. Scoring one window (batch 1; {args.windows} windows of anomaly-free.csv, the three calls "
            f"interleaved; `pca_t2q`, {TARGET} bundle), µs\n"
        )
        print(
            "| model | window | agent `LoadedModel.score` p50 | p99 | `session.run` alone p50 | p99 "
            "| numpy/sklearn `score_windows` p50 | p99 | numpy / agent p50 | p99 | max abs diff vs numpy "
            "| max abs diff, agent's vs default session options |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for d in devices:
            print(scoring(d, args.data, args.windows), flush=True)
        commission([*devices, shared, baseline], args.data, url)
        runs = measure(devices, shared, baseline, args.data, url, args.seconds)
        costs = [memory_result(memory_steps(d, args.data)) for d in devices]

    cmd = "python -m pumpops agent run --config agent.toml --max-seconds " + f"{args.seconds:g}"
    print(
        f"\n2. `{cmd}` (it hands over to the lean device process, same pid), one process per model at "
        f"once, plus the baseline; SKAB anomaly-free.csv replayed in real time (8 sensors at 1 Hz, one "
        f"frame a second), broker {url}; steady VmRSS at {args.seconds - 10:g} s; CPU from "
        f"{CPU_FROM_S:g} s to the end\n"
    )
    print(
        "| process | model | steady VmRSS MiB | VmHWM MiB | update-check child peak MiB | CPU % of one core "
        f"| rows | windows scored | RSS ≤ {RSS_TARGET_MIB:g} MiB | CPU ≤ {CPU_TARGET_PCT:g} % |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in runs:
        d, c = r["device"], r["counts"]
        child = "—" if r["child_peak"] is None else f"{r['child_peak']:.1f}"
        print(
            f"| {r['kind']} | {d.label} ({d.window_rows} rows) | {r['rss']:.1f} | {r['hwm']:.1f} | {child} "
            f"| {r['cpu']:.2f} ({r['cpu_s']:.2f} s in {r['cpu_window'][1] - r['cpu_window'][0]:.0f} s) "
            f"| {c.get('rows', 0)} | {c.get('windows_scored', 0)} "
            f"| {'met' if r['rss'] <= RSS_TARGET_MIB else 'NOT met'} "
            f"| {'met' if r['cpu'] <= CPU_TARGET_PCT else 'NOT met'} |"
        )
    lean, heavy = runs[0], runs[-1]
    print(
        f"\nbaseline / lean steady VmRSS (120-row model): {heavy['rss']:.1f} / {lean['rss']:.1f} MiB "
        f"= {heavy['rss'] / lean['rss']:.2f}x"
    )
    for r in runs:
        d = r["device"]
        print(
            f"\n{r['kind']}, {d.label}: status {r['status']}, calibration {r['calibration']}, "
            f"{r['wall']:.1f} s wall; VmRSS "
            + ", ".join(f"{t:g} s {v:.1f}" for t, v in r["rss_at"].items())
            + f" MiB; the agent's own state report: {r['state_rss']} MiB"
        )
    print(
        "\n3. What the resident memory of the device process is made of (a fresh interpreter, VmRSS "
        "after each step in this order), MiB:\n"
    )
    print("| step | " + " | ".join(f"{d.label} | +" for d in devices) + " |")
    print("|---|" + "---:|---:|" * len(devices))
    previous = [0.0] * len(devices)
    for i, (label, _) in enumerate(STEPS):
        cells = []
        for j, (c, _) in enumerate(costs):
            cells += [f"{c[i]:.1f}", f"{c[i] - previous[j]:+.1f}"]
            previous[j] = c[i]
        print(f"| {label} | " + " | ".join(cells) + " |")
    loaded = sorted({m for _, found in costs for m in found})
    print(f"\nNot loaded by the device process: {', '.join(m for m in NOT_LOADED if m not in loaded)}")
    if loaded:
        print(f"LOADED although they should not be: {', '.join(loaded)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
