"""A/B model slots: install into the inactive slot, health-check, switch one pointer, roll back.

Layout under ``root``::

    A/, B/              two bundle folders (manifest.json + model.onnx), verified on read
    current.json        {"current": "A", "previous": "B"}: replaced with os.replace, dir fsynced
    A.failed, B.failed  why the last install into that slot was refused (JSON)
    .tmp-*, .old-*      leftovers of an interrupted install, removed on open

An install copies the bundle into a temp folder, verifies it (``read_bundle``
checks every hash), moves it into the inactive slot, runs the health check
on it, and only then replaces ``current.json`` in one ``os.replace``. A power
cut at any point leaves either the old pointer (old model) or the new one
(new, complete, verified model): the slot that ``current.json`` names is
never written to. See ``docs/edge.md`` ("A/B slots").
May import: errors, numpy, onnxruntime and the stdlib; the bundle format
(``pumpops.schema``) is loaded on use so that importing
``pumpops.edge`` stays small.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from pumpops._atomic import fsync_dir, write_atomic
from pumpops.edge._health import HealthDecision
from pumpops.errors import IncompatibleBundleError, IntegrityError, NotFoundError

if TYPE_CHECKING:
    from pumpops.schema import Bundle

__all__ = ["POINTER_FILE", "SLOT_NAMES", "InstallHook", "SlotState", "Slots", "other_slot"]

SLOT_NAMES: Final = ("A", "B")
POINTER_FILE: Final = "current.json"

#: Called with the name of each install step (``copied``, ``placed``, ``checked``,
#: ``before_switch``, ``switched``, ``done``): tests kill the process there.
InstallHook = Callable[[str], None]


@dataclass(frozen=True)
class SlotState:
    """The model a slot holds.

    Attributes:
        slot: ``A`` or ``B``.
        model_name: the manifest's model name.
        model_version: the manifest's model version.
        path: the bundle folder.
        manifest_sha256: hex SHA-256 of its manifest (covers every file).
        previous: the slot that was current before (``None``: first install).
    """

    slot: str
    model_name: str
    model_version: int
    path: Path
    manifest_sha256: str
    previous: str | None = None


def other_slot(slot: str | None) -> str:
    """The slot an install writes to when ``slot`` is current.

    >>> other_slot("A"), other_slot("B"), other_slot(None)
    ('B', 'A', 'A')
    """
    return "A" if slot in (None, "B") else "B"


def _read_bundle(folder: Path) -> Bundle:
    # On use, not at import: pumpops.release must not load with pumpops.edge (edge import test).
    from pumpops.schema import read_bundle  # noqa: PLC0415

    return read_bundle(folder)


class Slots:
    """Two model slots and a ``current`` pointer under one folder.

    Opening cleans up what an interrupted install left (temp and old folders);
    it never touches the slot the pointer names.

    Args:
        root: the slots folder (created if missing).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.iterdir():
            if leftover.name.startswith((".tmp-", ".old-")):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)

    # -- the pointer -------------------------------------------------------

    def _pointer(self) -> tuple[str | None, str | None]:
        path = self.root / POINTER_FILE
        if not path.is_file():
            return None, None
        try:
            doc = json.loads(path.read_bytes())
            cur, prev = doc.get("current"), doc.get("previous")
        except (ValueError, AttributeError) as exc:
            raise IntegrityError(f"{path}: slot pointer is not valid JSON") from exc
        if cur not in SLOT_NAMES or prev not in (*SLOT_NAMES, None):
            raise IntegrityError(f"{path}: slot pointer names no valid slot: {doc!r}")
        return cur, prev

    def _switch(self, current: str, previous: str | None) -> None:
        data = json.dumps({"current": current, "previous": previous}, sort_keys=True).encode() + b"\n"
        write_atomic(self.root / POINTER_FILE, data)

    def _state(self, slot: str, previous: str | None) -> SlotState:
        bundle = _read_bundle(self.root / slot)
        m = bundle.manifest
        return SlotState(slot, m.model_name, m.model_version, bundle.folder, bundle.manifest_sha256, previous)

    # -- queries -----------------------------------------------------------

    def current(self) -> SlotState | None:
        """What runs now: the current slot's bundle, re-verified (``None``: never installed).

        Raises:
            IntegrityError: the current slot's files no longer match their manifest.
        """
        cur, prev = self._pointer()
        return None if cur is None else self._state(cur, prev)

    def bundle(self) -> Bundle | None:
        """The current slot's verified bundle, for the agent to load (``None``: never installed)."""
        cur, _ = self._pointer()
        return None if cur is None else _read_bundle(self.root / cur)

    def failed(self) -> dict[str, str]:
        """Slot -> why the last install into it was refused (slots without a refusal are absent)."""
        out = {}
        for slot in SLOT_NAMES:
            path = self.root / f"{slot}.failed"
            if path.is_file():
                out[slot] = str(json.loads(path.read_bytes()).get("reason", ""))
        return out

    # -- changes -----------------------------------------------------------

    def install(
        self,
        bundle_dir: Path,
        health_check: Callable[[Bundle], HealthDecision],
        *,
        hook: InstallHook | None = None,
    ) -> SlotState:
        """Install a bundle into the inactive slot; make it current only if it is healthy.

        Args:
            bundle_dir: a bundle folder (``manifest.json`` and the files it lists).
            health_check: runs the installed bundle and decides (e.g. :func:`measure_health`
                then :func:`decide_health`).
            hook: called at each named step (see :data:`InstallHook`).

        Returns:
            The new current state.

        Raises:
            IntegrityError: the bundle's files do not match its manifest (nothing changes).
            NotFoundError: ``bundle_dir`` holds no bundle.
            IncompatibleBundleError: the health check refused the model; ``current``
                is unchanged and the slot is marked failed with the reasons.
        """
        step = hook or (lambda _name: None)
        source = _read_bundle(Path(bundle_dir))
        cur, prev = self._pointer()
        target = other_slot(cur)
        if cur is not None and prev == target:
            # The previous model is about to be overwritten: stop offering it for rollback first.
            self._switch(cur, None)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{target}."))
        try:
            for name in ("manifest.json", *source.manifest.files):
                shutil.copyfile(source.folder / name, tmp / name)
                with open(tmp / name, "rb") as fh:
                    os.fsync(fh.fileno())
            _read_bundle(tmp)  # the copy, not the source, is what will run
            fsync_dir(tmp)
            step("copied")
            slot_dir = self.root / target
            if slot_dir.exists():
                shutil.rmtree(self.root / f".old-{target}", ignore_errors=True)
                os.replace(slot_dir, self.root / f".old-{target}")
            os.replace(tmp, slot_dir)
            fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(self.root / f".old-{target}", ignore_errors=True)
        step("placed")
        try:
            decision = health_check(_read_bundle(slot_dir))
        except Exception as exc:  # a crashing check refuses the model; the device must say why
            decision = HealthDecision(False, (f"health check crashed: {type(exc).__name__}: {exc}",))
        step("checked")
        if not decision.ok:
            reason = "; ".join(decision.reasons) or "health check failed"
            write_atomic(self.root / f"{target}.failed", json.dumps({"reason": reason}).encode())
            m = source.manifest
            raise IncompatibleBundleError(
                f"{m.model_name} v{m.model_version} refused by the health check in slot {target} "
                f"(current stays {cur or 'empty'}): {reason}"
            )
        step("before_switch")
        self._switch(target, cur)
        step("switched")
        (self.root / f"{target}.failed").unlink(missing_ok=True)
        step("done")
        return self._state(target, cur)

    def rollback(self) -> SlotState:
        """Switch back to the previous good slot (it is re-verified first).

        Returns:
            The new current state (its ``previous`` is the slot rolled back from).

        Raises:
            NotFoundError: there is no previous slot to go back to.
            IntegrityError: the previous slot's files no longer match their manifest.
        """
        cur, prev = self._pointer()
        if cur is None or prev is None or prev in self.failed():
            raise NotFoundError(f"{self.root}: no previous good model to roll back to")
        state = self._state(prev, cur)
        self._switch(prev, cur)
        return state
