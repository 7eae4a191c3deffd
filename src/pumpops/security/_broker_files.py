"""The files a Mosquitto broker runs from, written from the registry; and asking a running one to reread them.

``write_broker_files`` writes ``mosquitto.conf``, ``passwords``, ``acl``,
``ca.pem``, ``server.pem`` and ``server.key`` (0600) into one folder and records
that folder in the registry, so that ``pumpops devices provision|revoke``
rewrite its ``passwords`` (:func:`refresh_password_file`). Mosquitto rereads
its password and ACL files on SIGHUP (:func:`reload_broker`).

May import: ``pumpops.errors``, the stdlib and this package.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from pumpops.errors import ConfigError, NotFoundError
from pumpops.security._acl import AccessPolicy
from pumpops.security._mosquitto import mosquitto_config
from pumpops.security._registry import CredentialRegistry, make_private_dir, write_private

__all__ = ["BrokerFiles", "broker_folder", "refresh_password_file", "reload_broker", "write_broker_files"]

_RECORD = "broker.json"


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """What :func:`write_broker_files` wrote (absolute paths)."""

    folder: Path
    config: Path
    passwords: Path
    acl: Path
    ca: Path
    server_cert: Path
    server_key: Path


def write_broker_files(
    registry: CredentialRegistry,
    folder: Path,
    *,
    hostnames: list[str],
    port: int = 8883,
    bind: str | None = None,
    topic_prefix: str = "pumpops/v1",
    require_certificate: bool = False,
) -> BrokerFiles:
    """Write a Mosquitto configuration with TLS, passwords and ACL into ``folder``.

    Creates the hub services' identities and the CA if they are missing.

    Raises:
        ConfigError: the folder cannot be written, or no host name.
    """
    if not hostnames:
        raise ConfigError("give the broker's host name(s) with --hostname (clients check it)")
    folder = folder.resolve()
    try:
        make_private_dir(folder)
        registry.ensure_hub_identities()
        ca = registry.ca()
        server = ca.issue_server(hostnames)
        files = BrokerFiles(
            folder=folder,
            config=folder / "mosquitto.conf",
            passwords=folder / "passwords",
            acl=folder / "acl",
            ca=folder / "ca.pem",
            server_cert=folder / "server.pem",
            server_key=folder / "server.key",
        )
        write_private(files.ca, ca.cert_pem)
        write_private(files.server_cert, server.cert_pem)
        write_private(files.server_key, server.key_pem)
        write_private(files.acl, AccessPolicy(topic_prefix).mosquitto_acl().encode())
        write_private(files.passwords, registry.mosquitto_password_file().encode())
        config = mosquitto_config(folder, port=port, bind=bind, require_certificate=require_certificate)
        write_private(files.config, config.encode())
        record = {"folder": str(folder), "topic_prefix": topic_prefix}
        write_private(registry.folder / _RECORD, (json.dumps(record) + "\n").encode())
    except PermissionError as exc:
        where = f"{exc.strerror} ({exc.filename})"
        raise ConfigError(f"cannot write the broker files in {folder}: {where}") from exc
    return files


def broker_folder(registry: CredentialRegistry) -> Path | None:
    """The folder ``pumpops broker config`` last wrote, if any."""
    path = registry.folder / _RECORD
    if not path.exists():
        return None
    try:
        return Path(json.loads(path.read_text(encoding="utf-8"))["folder"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def refresh_password_file(registry: CredentialRegistry) -> Path | None:
    """Rewrite the broker's ``passwords`` from the registry; return it (None: no broker configured)."""
    folder = broker_folder(registry)
    if folder is None:
        return None
    path = folder / "passwords"
    try:
        write_private(path, registry.mosquitto_password_file().encode())
    except OSError as exc:
        raise ConfigError(f"cannot rewrite the broker password file {path}: {exc}") from exc
    return path


def reload_broker(pid_file: Path) -> int:
    """Send SIGHUP to the Mosquitto whose pid is in ``pid_file`` (it rereads passwords and ACL); return it.

    Raises:
        ConfigError: the file does not hold a pid.
        NotFoundError: no such process.
    """
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--pid-file {pid_file}: no process id in it ({exc})") from exc
    if pid <= 1:
        raise ConfigError(f"--pid-file {pid_file}: {pid} is not a broker's process id")
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError as exc:
        raise NotFoundError(f"no process {pid} (from --pid-file {pid_file}): is the broker running?") from exc
    except PermissionError as exc:
        raise ConfigError(f"not allowed to signal process {pid} (from --pid-file {pid_file})") from exc
    return pid
