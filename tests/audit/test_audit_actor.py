"""The actor audit entries are attributed to: settings' ``actor``, never empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpops.errors import ConfigError
from pumpops.settings import SETTINGS_FILE, default_actor, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PUMPOPS_ACTOR", "PUMPOPS_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)


def test_settings_actor_defaults_to_user_at_host(tmp_path: Path) -> None:
    actor = load_settings(tmp_path).actor
    assert actor == default_actor()
    user, _, host = actor.partition("@")
    assert user
    assert host


def test_settings_actor_from_file_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / SETTINGS_FILE).write_text('actor = "ops@hq"\n')
    assert load_settings(tmp_path).actor == "ops@hq"
    monkeypatch.setenv("PUMPOPS_ACTOR", "ci@runner")
    assert load_settings(tmp_path).actor == "ci@runner"


@pytest.mark.parametrize("value", ["", "   "])
def test_settings_actor_blank_raises_config_error(tmp_path: Path, value: str) -> None:
    (tmp_path / SETTINGS_FILE).write_text(f'actor = "{value}"\n')
    with pytest.raises(ConfigError, match="actor"):
        load_settings(tmp_path)
