from __future__ import annotations

from pathlib import Path

import pytest

from pumpops.errors import ConfigError
from pumpops.settings import SETTINGS_FILE, init_workspace, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("PUMPOPS_"):
            monkeypatch.delenv(key)


def test_settings_defaults_use_sqlite_in_workspace(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert settings.broker_url == "embedded"
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'pumpops.db').resolve()}"


def test_settings_file_then_env_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / SETTINGS_FILE).write_text(
        'broker_url = "mqtt://10.0.0.1:1883"\n[ingest]\nbatch_max_messages = 10\nmax_payload_bytes = 4096\n'
    )
    assert load_settings(tmp_path).broker_url == "mqtt://10.0.0.1:1883"
    monkeypatch.setenv("PUMPOPS_BROKER_URL", "mqtt://127.0.0.1:1884")
    monkeypatch.setenv("PUMPOPS_INGEST__BATCH_MAX_MESSAGES", "20")
    settings = load_settings(tmp_path)
    assert settings.broker_url == "mqtt://127.0.0.1:1884"
    assert settings.ingest.batch_max_messages == 20
    assert settings.ingest.max_payload_bytes == 4096  # the file's nested value survives the env override
    assert load_settings(tmp_path, broker_url="embedded").broker_url == "embedded"


def test_settings_workspace_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / SETTINGS_FILE).write_text('topic_prefix = "acme/v1"\n')
    monkeypatch.setenv("PUMPOPS_WORKSPACE", str(tmp_path))
    assert load_settings().topic_prefix == "acme/v1"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('broker_url = "http://x"\n', "broker_url"),
        ('database_url = "mysql://x"\n', "database_url"),
        ("[ingest]\nbatch_max_messages = 0\n", "ingest.batch_max_messages"),
        ("[ingest]\nmax_payload_bytes = 'big'\n", "ingest.max_payload_bytes"),
        ("unknown_key = 1\n", "unknown_key"),
        ("broker_url = \n", "cannot read"),
    ],
)
def test_settings_invalid_value_names_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / SETTINGS_FILE).write_text(text)
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_settings(tmp_path)


def test_init_workspace_writes_loadable_file_and_refuses_overwrite(tmp_path: Path) -> None:
    path = init_workspace(tmp_path / "ws", broker_url="mqtt://127.0.0.1:1883")
    assert load_settings(path.parent).broker_url == "mqtt://127.0.0.1:1883"
    with pytest.raises(ConfigError, match="already exists"):
        init_workspace(path.parent)


def test_settings_embedded_broker_default_port_is_not_mosquittos(tmp_path: Path) -> None:
    """Friction 4: the embedded default must not clash with a system Mosquitto on 1883."""
    assert load_settings(tmp_path).embedded_broker_port != 1883
