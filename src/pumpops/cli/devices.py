"""Command-line commands of device identities on the broker: ``devices provision|revoke|identities``.

They join the ``devices`` group of :mod:`pumpops.cli.store` (``devices list|register``: the pumps
the hub's database knows) rather than replacing it.

``provision`` issues a device its MQTT credentials (the hub keeps only their
hashes, ``pumpops.security``) and writes what the pump needs into one folder:
``agent.toml``, ``broker.password``, the broker CA (``ca.pem``), the TUF trusted
root (``root.json``) and, with ``--client-cert``, a client certificate. Every
file is 0600, the folder 0700. ``provision`` and ``revoke`` rewrite the password
file of the broker ``pumpops broker config`` wrote; Mosquitto rereads it on
SIGHUP (``--pid-file`` sends it).
May import: typer, ``pumpops.cli._support``, security, telemetry, edge, settings, errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pumpops.cli._support import (
    JsonFlag,
    OutputFormat,
    OutputOption,
    emit_record,
    emit_rows,
    err_console,
    output_format,
    settings_from,
)
from pumpops.errors import ConfigError, InputError

devices_app = typer.Typer(
    help="Device identities on the broker: provision a pump's credentials, revoke them, list them.",
    no_args_is_help=True,
)

PidFileOpt = Annotated[
    Path | None,
    typer.Option("--pid-file", help="Mosquitto's pid file: send it SIGHUP to reread passwords and ACL."),
]


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command's ``devices`` group.

    ``pumpops.cli.store`` registers ``devices list|register`` first; a second group of
    the same name would hide those, so these commands join it (or make the group when
    the store's commands are absent).
    """
    group = next((g for g in app.registered_groups if g.name == "devices"), None)
    if group is None or group.typer_instance is None:
        app.add_typer(devices_app, name="devices")
        return
    group.typer_instance.registered_commands.extend(devices_app.registered_commands)


def _check_out(out: Path, *, force: bool) -> Path:
    """Create the output folder (0700) and prove it is writable, before anything is registered."""
    from pumpops.security import make_private_dir

    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"--out {out} is not empty; name an empty folder, or pass --force to overwrite")
    try:
        make_private_dir(out)
        probe = out / ".pumpops-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {out} cannot be written: {exc.strerror or exc}") from exc
    return out


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def agent_toml(
    device_id: str,
    *,
    site: str,
    group: str,
    profile: str,
    target: str,
    broker_url: str,
    topic_prefix: str,
    repository_url: str,
    client_cert: bool,
) -> str:
    """The ``agent.toml`` of a provisioned device (paths relative to it)."""
    tls = broker_url.startswith("mqtts://")
    lines = [
        f"# written by `pumpops devices provision` for {device_id}: carry this folder to the pump.",
        "# Keep it private: broker.password (and device.key) are the pump's identity.",
        "",
        "[agent]",
        f"device_id = {_toml(device_id)}",
        f"site = {_toml(site)}",
        f"group = {_toml(group)}",
        f"profile = {_toml(profile)}",
        f"target = {_toml(target)}",
        'state_dir = "agent-state"',
        "",
        "[broker]",
        f"url = {_toml(broker_url)}",
        f"topic_prefix = {_toml(topic_prefix)}",
        f"username = {_toml(device_id)}",
        'password_file = "broker.password"',
    ]
    if tls:
        lines.append('ca_file = "ca.pem"')
    if client_cert:
        lines += ['cert_file = "device.pem"', 'key_file = "device.key"']
    lines += [
        "",
        "[repository]",
        f"url = {_toml(repository_url)}",
        'trusted_root = "root.json"',
        "",
        "[source]",
        'kind = "simulator"',
    ]
    return "\n".join(lines) + "\n"


@devices_app.command("provision")
def provision_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(help="The pump's id (its MQTT user name).")],
    site: Annotated[str, typer.Option("--site", help="Its site (a topic level).")],
    group: Annotated[str, typer.Option("--group", help="Its device group (which models it installs).")],
    profile: Annotated[str, typer.Option("--profile", help="Its manufacturer profile.")],
    broker_url: Annotated[
        str, typer.Option("--broker-url", help="The broker as the pump reaches it: mqtts://host:8883.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the pump's files into.")],
    target: Annotated[str, typer.Option("--target", help="Its target platform profile.")] = "x86_64-ipc",
    repository_url: Annotated[
        str | None,
        typer.Option(
            "--repository-url", help="The hub's /tuf/ URL (default: http://<broker host>:8080/tuf/)."
        ),
    ] = None,
    client_cert: Annotated[
        bool, typer.Option("--client-cert", help="Also issue a client certificate (mutual TLS).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Issue new credentials for a provisioned device; overwrite --out.")
    ] = False,
    pid_file: PidFileOpt = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Issue a pump's broker credentials and write everything it needs into --out.

    The hub keeps only hashes of the password; the folder holds agent.toml,
    broker.password, ca.pem (mqtts), root.json (the TUF trusted root, once
    `pumpops tuf init` has run) and, with --client-cert, device.pem/device.key.
    """
    from pumpops.release import repository_folder
    from pumpops.security import CredentialRegistry, check_device_id, refresh_password_file, write_private
    from pumpops.telemetry import parse_broker_url

    settings = settings_from(ctx)
    check_device_id(device_id)
    address = parse_broker_url(broker_url)
    if address is None:
        raise ConfigError("--broker-url must be the broker as the pump reaches it (mqtts://host:8883)")
    if not address.tls:
        err_console.print(
            f"warning: {broker_url} is not TLS: the password crosses the network in clear", highlight=False
        )
    folder = _check_out(out, force=force)
    registry = CredentialRegistry.of_workspace(settings.workspace)
    password = registry.add_device(device_id, site=site, group=group, force=force)
    written: list[str] = []
    try:
        files: dict[str, bytes] = {"broker.password": (password + "\n").encode()}
        if address.tls:
            files["ca.pem"] = registry.ca().cert_pem
        if client_cert:
            issued = registry.ca().issue_client(device_id)
            files["device.pem"], files["device.key"] = issued.cert_pem, issued.key_pem
        root = repository_folder(settings) / "metadata" / "1.root.json"
        if root.is_file():
            files["root.json"] = root.read_bytes()
        files["agent.toml"] = agent_toml(
            device_id,
            site=site,
            group=group,
            profile=profile,
            target=target,
            broker_url=broker_url,
            topic_prefix=settings.topic_prefix,
            repository_url=repository_url or f"http://{address.host}:8080/tuf/",
            client_cert=client_cert,
        ).encode()
        for name, data in files.items():
            write_private(folder / name, data)
            written.append(name)
        _check_agent_toml(folder / "agent.toml")
    except BaseException:
        registry.revoke(device_id)  # nothing half-provisioned stays registered
        raise
    record: dict[str, Any] = {"device": device_id, "folder": str(folder), "files": ", ".join(written)}
    if "root.json" not in files:
        record["warning"] = (
            "no TUF repository yet: copy its metadata/1.root.json into the folder as root.json "
            "(`pumpops tuf init` creates it)"
        )
    record |= _broker_update(registry, refresh_password_file(registry), pid_file)
    emit_record(record, output=output_format(output, as_json), title=f"provisioned {device_id}")


def _check_agent_toml(path: Path) -> None:
    """Load the written agent.toml as the agent will (a wrong key is our bug, caught here)."""
    from pumpops.edge import load_agent_config

    load_agent_config(path)


def _broker_update(registry: Any, passwords: Path | None, pid_file: Path | None) -> dict[str, Any]:
    """Rewrite the broker's password file and reload it (with a pid file); say what to do otherwise."""
    from pumpops.security import reload_broker

    if passwords is None:
        return {"broker": "no `pumpops broker config` yet: its password file is written from the registry"}
    if pid_file is not None:
        pid = reload_broker(pid_file)
        return {"broker": f"{passwords} rewritten; sent SIGHUP to mosquitto (pid {pid})"}
    return {"broker": f"{passwords} rewritten; reload the broker: kill -HUP <mosquitto pid>"}


@devices_app.command("revoke")
def revoke_cmd(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(help="The device to shut out.")],
    pid_file: PidFileOpt = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Remove a device's credentials; the broker refuses it once it rereads its password file.

    Exits 4 for a device that is not provisioned. Mosquitto refuses the device
    once it has reread its password file (--pid-file sends it SIGHUP; else
    `kill -HUP <mosquitto pid>`); the embedded broker at its next connect.
    """
    from pumpops.security import HUB_PREFIX, CredentialRegistry, refresh_password_file

    settings = settings_from(ctx)
    if device_id.startswith(HUB_PREFIX):
        raise InputError(f"{device_id!r} is a hub identity: renew it with `pumpops broker config --renew`")
    registry = CredentialRegistry.of_workspace(settings.workspace)
    gone = registry.revoke(device_id)
    record: dict[str, Any] = {"device": gone.name, "revoked": True}
    record |= _broker_update(registry, refresh_password_file(registry), pid_file)
    emit_record(record, output=output_format(output, as_json), title=f"revoked {device_id}")


@devices_app.command("identities")
def identities_cmd(
    ctx: typer.Context, output: OutputOption = OutputFormat.TABLE, as_json: JsonFlag = False
) -> None:
    """List the identities the broker admits (devices and the hub's services); never a password."""
    from pumpops.security import CredentialRegistry

    settings = settings_from(ctx)
    rows = [
        {"name": i.name, "role": i.role, "site": i.site, "group": i.group, "created": i.created}
        for i in CredentialRegistry.of_workspace(settings.workspace).identities()
    ]
    emit_rows(
        rows,
        output=output_format(output, as_json),
        columns=("name", "role", "site", "group", "created"),
        title="broker identities",
        empty="no identity yet: `pumpops devices provision` or `pumpops broker config`",
    )
