"""Command-line commands of the secured broker: ``broker config`` (Mosquitto: TLS, passwords, ACL).

The thin shell over :func:`pumpops.security.write_broker_files`: it writes the
files Mosquitto runs from, creates the hub services' identities, and prints the
``[broker_auth]`` settings the hub's services then connect with.
May import: typer, ``pumpops.cli._support``, security, settings, errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pumpops.cli._support import (
    JsonFlag,
    OutputFormat,
    OutputOption,
    emit_record,
    output_format,
    settings_from,
)

broker_app = typer.Typer(
    help="The secured MQTT broker: write a Mosquitto configuration with TLS, passwords and access rules.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.add_typer(broker_app, name="broker")


def broker_auth_toml(registry_folder: Path, ca_file: Path, port: int, hostname: str) -> str:
    """The ``pumpops.toml`` tables that make the hub's services connect to the secured broker."""
    lines = [
        "# Append to pumpops.toml, and set its top-level broker_url (above every [table]) to",
        f'# broker_url = "mqtts://{hostname}:{port}"',
        "",
        "[broker_auth]",
        f'ca_file = "{ca_file}"',
    ]
    for service in ("ingest", "rollout", "events"):
        lines += [
            "",
            f"[broker_auth.{service}]",
            f'username = "hub-{service}"',
            f'password_file = "{registry_folder / "hub" / f"hub-{service}.password"}"',
        ]
    return "\n".join(lines) + "\n"


@broker_app.command("config")
def config_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Folder for mosquitto.conf and the files it names.")],
    hostname: Annotated[
        list[str],
        typer.Option("--hostname", help="A name or address clients use for the broker (repeatable)."),
    ],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="The TLS port.")] = 8883,
    bind: Annotated[
        str | None, typer.Option("--bind", help="Listen on this address only (default: every interface).")
    ] = None,
    require_certificate: Annotated[
        bool,
        typer.Option("--require-certificate", help="Also demand a client certificate signed by the CA."),
    ] = False,
    renew: Annotated[
        bool,
        typer.Option("--renew", help="Issue the hub services new passwords (old ones stop working)."),
    ] = False,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Write a Mosquitto configuration: TLS listener, password file, ACL, CA and server certificate.

    Clients check the broker's host name against its certificate: give every
    name they use with --hostname. Writes broker-settings.toml too: the
    [broker_auth] lines for pumpops.toml. Run the broker with
    `mosquitto -c OUT/mosquitto.conf`.
    """
    from pumpops.security import CredentialRegistry, write_broker_files, write_private

    settings = settings_from(ctx)
    registry = CredentialRegistry.of_workspace(settings.workspace)
    if renew:
        registry.ensure_hub_identities(renew=True)
    files = write_broker_files(
        registry,
        out,
        hostnames=hostname,
        port=port,
        bind=bind,
        topic_prefix=settings.topic_prefix,
        require_certificate=require_certificate,
    )
    snippet = files.folder / "broker-settings.toml"
    write_private(snippet, broker_auth_toml(registry.folder, files.ca, port, hostname[0]).encode())
    emit_record(
        {
            "config": str(files.config),
            "passwords": str(files.passwords),
            "acl": str(files.acl),
            "ca": str(files.ca),
            "server certificate": f"{files.server_cert} ({', '.join(hostname)})",
            "hub settings": f"{snippet} (add to pumpops.toml)",
            "run": f"mosquitto -c {files.config}",
        },
        output=output_format(output, as_json),
        title="broker configuration",
    )
