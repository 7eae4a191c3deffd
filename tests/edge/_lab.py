"""A TUF repository on disk that tests publish to and tamper with, and a device that updates from it.

The python-tuf ``RepositorySimulator`` pattern, on disk: the hub side is the
real :class:`~pumpops.release._tuf.TufRepository`; the device reads it through
:class:`TamperingFetcher`, a :class:`~pumpops.edge.FolderFetcher` whose
answers a scenario can replace per file (other bytes, or endless bytes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pumpops.edge import FOLDER_BASE_URL, EdgeUpdater, FolderFetcher
from pumpops.release import PublishedFile, PublishedTarget, TufRepository, generate_signer

GROUP = "north-sea"
TARGET = "x86-64-ipc"
AGENT = "1.2.0"


class TamperingFetcher(FolderFetcher):
    """A folder fetcher whose answer for a relative path a test can replace."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.overrides: dict[str, Callable[[], Iterator[bytes]]] = {}

    def _fetch(self, url: str) -> Iterator[bytes]:
        relative = url[len(FOLDER_BASE_URL) :]
        if relative in self.overrides:
            return self.overrides[relative]()
        return super()._fetch(url)


def write_bundle(
    folder: Path,
    version: str,
    *,
    group: str = GROUP,
    target: str = TARGET,
    min_agent: str = "1.0.0",
    model: bytes | None = None,
) -> PublishedTarget:
    """A hand-written bundle in the ``pumpops.bundle/1`` layout, with the fields the edge checks."""
    where = folder / group / target / version
    where.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else f"onnx model {group} {target} {version}".encode()
    (where / "model.onnx").write_bytes(model)
    manifest = {
        "format": "pumpops.bundle/1",
        "group": group,
        "target": {"id": target},
        "model_version": int(version),
        "min_agent_version": min_agent,
        "files": {"model.onnx": {"sha256": hashlib.sha256(model).hexdigest(), "length": len(model)}},
    }
    (where / "manifest.json").write_text(json.dumps(manifest, sort_keys=True))
    return PublishedTarget(
        group=group,
        target=target,
        version=version,
        minimum_agent_version=min_agent,
        files=(
            PublishedFile("manifest.json", where / "manifest.json"),
            PublishedFile("model.onnx", where / "model.onnx"),
        ),
    )


class Lab:
    """A hub repository, its keys, and one device (group north-sea, target x86-64-ipc, agent 1.2.0)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root_signers = [generate_signer()]
        self.signers: dict[str, list[Any]] = {
            r: [generate_signer()] for r in ("targets", "snapshot", "timestamp")
        }
        self.repo = TufRepository.create(
            tmp / "repo", root_signers=self.root_signers, online_signers=self.signers
        )
        self.trusted_root = self.repo.root_bytes(1)
        self.fetcher = TamperingFetcher(tmp / "repo")

    def publish(self, *bundles: PublishedTarget, now: datetime | None = None) -> None:
        repo = TufRepository(self.repo.folder, now=now) if now else self.repo
        repo.publish(list(bundles), self.signers)

    def bundle(self, version: str, **kwargs: Any) -> PublishedTarget:
        return write_bundle(self.tmp / "bundles", version, **kwargs)

    def device(self, *, agent: str = AGENT, group: str = GROUP, target: str = TARGET) -> EdgeUpdater:
        return EdgeUpdater(
            trusted_root=self.trusted_root,
            repository=self.tmp / "repo",
            state_dir=self.tmp / "device" / "state",
            install_dir=self.tmp / "device" / "models",
            group=group,
            target=target,
            agent_version=agent,
            fetcher=self.fetcher,
        )

    def target_file(self, version: str, name: str) -> Path:
        (found,) = (self.repo.targets_dir / "models" / GROUP / TARGET / version).glob(f"*.{name}")
        return found

    def metadata(self, name: str) -> Path:
        return self.repo.metadata_dir / name

    def serve(self, relative: str, data: bytes) -> None:
        self.fetcher.overrides[relative] = lambda: iter([data])

    def now(self) -> datetime:
        return datetime.now(UTC)
