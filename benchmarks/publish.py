"""Publish-time benchmark of the TUF repository (issue 5).

Time to publish one release (one model version for three targets of one
group) into a repository that already holds 1,000 targets, with and without
per-group delegation, and the metadata bytes a device of that group
downloads in its next update cycle (counted by its fetcher). Prints a
markdown table with the machine and date.

    .venv/bin/python benchmarks/publish.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pumpops.edge import FOLDER_BASE_URL, EdgeUpdater, FolderFetcher
from pumpops.release._keys import generate_signer
from pumpops.release._tuf import PublishedFile, PublishedTarget, TufRepository

GROUPS = 10
TARGETS = ("x86-64-ipc", "aarch64-gateway", "armv7-controller", "x86-64-edge", "aarch64-edge")
VERSIONS = 10  # 10 groups x 5 targets x 10 versions x 2 files = 1,000 targets


class CountingFetcher(FolderFetcher):
    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.metadata_bytes = 0

    def _fetch(self, url: str) -> Iterator[bytes]:
        for chunk in super()._fetch(url):
            if url.startswith(FOLDER_BASE_URL + "metadata/"):
                self.metadata_bytes += len(chunk)
            yield chunk


def bundle(folder: Path, group: str, target: str, version: int) -> PublishedTarget:
    where = folder / group / target / str(version)
    where.mkdir(parents=True, exist_ok=True)
    model = os.urandom(2048)
    (where / "model.onnx").write_bytes(model)
    manifest = {
        "group": group,
        "target": {"id": target},
        "model_version": version,
        "min_agent_version": "1.0.0",
        "files": {"model.onnx": {"sha256": hashlib.sha256(model).hexdigest(), "length": len(model)}},
    }
    (where / "manifest.json").write_text(json.dumps(manifest))
    files = tuple(PublishedFile(n, where / n) for n in ("manifest.json", "model.onnx"))
    return PublishedTarget(group, target, str(version), "1.0.0", files, {"model_name": "pumpops-skab"})


def run(tmp: Path, delegate: bool, repeats: int) -> dict[str, float]:
    signers = {r: [generate_signer()] for r in ("targets", "snapshot", "timestamp")}
    repo = TufRepository.create(
        tmp / "repo", root_signers=[generate_signer()], online_signers=signers, delegate_per_group=delegate
    )
    existing = [
        bundle(tmp / "b", f"group-{g:02d}", t, v)
        for g in range(GROUPS)
        for t in TARGETS
        for v in range(1, VERSIONS + 1)
    ]
    repo.publish(existing, signers)
    assert len(repo.list_targets()) == 1000
    device_root = repo.root_bytes(1)

    def device(name: str) -> tuple[EdgeUpdater, CountingFetcher]:
        fetcher = CountingFetcher(repo.folder)
        return (
            EdgeUpdater(
                trusted_root=device_root,
                repository=repo.folder,
                state_dir=tmp / name / "state",
                install_dir=tmp / name / "models",
                group="group-00",
                target="x86-64-ipc",
                agent_version="1.0.0",
                fetcher=fetcher,
            ),
            fetcher,
        )

    warm, _ = device("warm")
    warm.update()  # a device that is up to date before the publish
    times = []
    warm_kib = cold_kib = 0.0
    top = 0
    for i in range(repeats):
        release = [bundle(tmp / "b", "group-00", t, VERSIONS + 1 + i) for t in TARGETS[:3]]
        start = time.perf_counter()
        repo.publish(release, signers)
        times.append(time.perf_counter() - start)
        if i == 0:  # what devices download after one release into 1,000 targets
            warm_device, warm_fetcher = device("warm")
            warm_device.update()
            cold_device, cold_fetcher = device("cold")
            cold_device.update()
            warm_kib, cold_kib = warm_fetcher.metadata_bytes / 1024, cold_fetcher.metadata_bytes / 1024
            top = (repo.metadata_dir / f"{repo.targets().signed.version}.targets.json").stat().st_size
    return {
        "publish_ms": statistics.median(times) * 1000,
        "warm_kib": warm_kib,
        "cold_kib": cold_kib,
        "targets_kib": top / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    rows = []
    for delegate in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append((delegate, run(Path(tmp), delegate, args.repeats)))
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"median of {args.repeats} publishes of a release (3 targets of one group) into 1,000 targets."
    )
    print()
    header = (
        "layout",
        "publish (ms)",
        "top-level targets.json (KiB)",
        "device update (KiB)",
        "new device (KiB)",
    )
    print("| " + " | ".join(header) + " |")
    print("|---|---:|---:|---:|---:|")
    for delegate, r in rows:
        layout = "delegated per group" if delegate else "one targets role"
        print(
            f"| {layout} | {r['publish_ms']:.1f} | {r['targets_kib']:.1f} | {r['warm_kib']:.1f} | "
            f"{r['cold_kib']:.1f} |"
        )


if __name__ == "__main__":
    main()
