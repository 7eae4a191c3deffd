"""``[broker_auth]``: the hub services' TLS files and identities, checked at load, applied per service."""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpops.errors import ConfigError
from pumpops.hub import ingest_client_id, service_address
from pumpops.settings import load_settings
from pumpops.telemetry import BrokerAddress


def _workspace(tmp_path: Path, text: str) -> Path:
    (tmp_path / "pumpops.toml").write_text(text)
    return tmp_path


def test_tls_files_need_an_mqtts_broker(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, 'broker_url = "mqtt://h:1883"\n[broker_auth]\nca_file = "ca.pem"\n')
    with pytest.raises(ConfigError, match="need an mqtts:// broker_url"):
        load_settings(ws)


def test_a_certificate_needs_its_key(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, 'broker_url = "mqtts://h:8883"\n[broker_auth]\ncert_file = "c.pem"\n')
    with pytest.raises(ConfigError, match="key_file"):
        load_settings(ws)


def test_unknown_keys_and_bad_user_names_are_refused(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, '[broker_auth]\npassword = "inline"\n')
    with pytest.raises(ConfigError, match=r"broker_auth\.password"):
        load_settings(ws)
    ws = _workspace(tmp_path, '[broker_auth.ingest]\nusername = "a/b"\npassword_file = "p"\n')
    with pytest.raises(ConfigError, match=r"broker_auth\.ingest\.username"):
        load_settings(ws)


def test_each_service_connects_as_its_own_identity_with_tls(tmp_path: Path) -> None:
    (tmp_path / "ingest.pw").write_text("ingest-secret\n")
    (tmp_path / "rollout.pw").write_text("rollout-secret\n")
    ws = _workspace(
        tmp_path,
        'broker_url = "mqtts://broker.example:8883"\n'
        '[broker_auth]\nca_file = "ca.pem"\n'
        '[broker_auth.ingest]\nusername = "hub-ingest"\npassword_file = "ingest.pw"\n'
        '[broker_auth.rollout]\nusername = "hub-rollout"\npassword_file = "rollout.pw"\n',
    )
    settings = load_settings(ws)
    plain = BrokerAddress("broker.example", 8883)  # as the hub builds it from host and port
    ingest = service_address(settings, "ingest", plain)
    assert (ingest.tls, ingest.username, ingest.password) == (True, "hub-ingest", "ingest-secret")
    assert ingest.ca_file == str(tmp_path / "ca.pem")
    tls = ingest.tls_options()
    assert tls is not None
    assert tls.ca_file == str(tmp_path / "ca.pem")
    assert service_address(settings, "rollout", plain).username == "hub-rollout"
    events = service_address(settings, "events", plain)  # no identity configured: no password
    assert events.password is None
    # ingest's client id: derived from its identity, stable, not the well-known one
    client_id = ingest_client_id(settings, ingest)
    assert client_id.startswith("hub-ingest-")
    assert client_id == ingest_client_id(settings, ingest)
    assert "pumpops-ingest" not in client_id


def test_an_explicit_ingest_client_id_is_kept(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s\n")
    ws = _workspace(
        tmp_path,
        '[broker_auth.ingest]\nusername = "hub-ingest"\npassword_file = "pw"\n[ingest]\nclient_id = "mine"\n',
    )
    settings = load_settings(ws)
    address = service_address(settings, "ingest", BrokerAddress("h", 1883))
    assert ingest_client_id(settings, address) == "mine"


@pytest.mark.parametrize("content", [None, ""])
def test_a_missing_or_empty_password_file_is_named(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "pw").write_text(content)
    ws = _workspace(tmp_path, '[broker_auth.events]\nusername = "hub-events"\npassword_file = "pw"\n')
    with pytest.raises(ConfigError, match=r"broker_auth\.events\.password_file"):
        service_address(load_settings(ws), "events", BrokerAddress("h", 1883))


def test_open_broker_settings_change_nothing(tmp_path: Path) -> None:
    settings = load_settings(_workspace(tmp_path, ""))
    address = service_address(settings, "ingest", BrokerAddress("127.0.0.1", 1884))
    assert address == BrokerAddress("127.0.0.1", 1884)
    assert address.tls_options() is None
