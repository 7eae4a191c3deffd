"""``agent.toml``: the broker's TLS and credential keys, paths relative to the file, clear refusals."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pumpops.edge import Outbox
from pumpops.edge._config import load_agent_config, write_starting_agent_toml
from pumpops.errors import ConfigError


def _toml(tmp_path: Path, broker: str) -> Path:
    path = write_starting_agent_toml(tmp_path / "conf" / "agent.toml")
    path.write_text(path.read_text().replace('[broker]\nurl = "none"', f"[broker]\n{broker}", 1))
    return path


def test_mqtts_with_files_relative_to_the_settings_file(tmp_path: Path) -> None:
    broker = load_agent_config(
        _toml(
            tmp_path,
            'url = "mqtts://hub.example:8884"\nca_file = "ca.pem"\ncert_file = "tls/dev.pem"\n'
            'key_file = "/etc/pumpops/dev.key"\nusername = "pump-0001"\npassword_file = "pw"',
        )
    ).broker
    conf = (tmp_path / "conf").resolve()
    assert broker.tls
    assert broker.host_port == ("hub.example", 8884)
    assert broker.ca_file == conf / "ca.pem"
    assert broker.cert_file == conf / "tls" / "dev.pem"
    assert broker.key_file == Path("/etc/pumpops/dev.key")
    assert broker.password_file == conf / "pw"
    assert broker.username == "pump-0001"


def test_default_ports(tmp_path: Path) -> None:
    assert load_agent_config(_toml(tmp_path / "a", 'url = "mqtts://hub"')).broker.host_port == ("hub", 8883)
    assert load_agent_config(_toml(tmp_path / "b", 'url = "mqtt://hub"')).broker.host_port == ("hub", 1883)
    assert load_agent_config(_toml(tmp_path / "c", 'url = "none"')).broker.host_port is None


@pytest.mark.parametrize(
    ("broker", "says"),
    [
        ('url = "tcp://hub:1883"', "mqtt(s)://host:port"),
        ('url = "mqtt://:1883"', "mqtt(s)://host:port"),
        ('url = "mqtt://hub:port"', "mqtt(s)://host:port"),
        ('url = "mqtt://hub:70000"', "1 to 65535"),
        ('url = "mqtt://hub:1883"\nca_file = "ca.pem"', "need an mqtts:// url"),
        ('url = "mqtts://hub"\ncert_file = "c.pem"', "both broker.cert_file and broker.key_file"),
        ('url = "mqtts://hub"\npassword_file = "pw"', "password_file needs broker.username"),
        ('url = "mqtts://hub"\nusername = ""', "broker.username"),
        ('url = "mqtts://hub"\npassword = "hunter2"', "broker.password"),
    ],
)
def test_bad_broker_settings_are_refused_with_the_reason(tmp_path: Path, broker: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_agent_config(_toml(tmp_path, broker))
    assert says in str(err.value)


def test_password_is_the_first_line_of_its_file(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'url = "mqtts://hub"\nusername = "p-1"\npassword_file = "pw"')
    (path.parent / "pw").write_text("s3cret  \nignored\n")
    assert load_agent_config(path).broker.password() == "s3cret"


@pytest.mark.parametrize("content", [None, "", "\n  \n"])
def test_missing_or_empty_password_file_is_a_clear_error(tmp_path: Path, content: str | None) -> None:
    path = _toml(tmp_path, 'url = "mqtts://hub"\nusername = "p-1"\npassword_file = "pw"')
    if content is not None:
        (path.parent / "pw").write_text(content)
    broker = load_agent_config(path).broker
    with pytest.raises(ConfigError, match=r"broker\.password_file"):
        broker.password()


def test_reserved_message_ids_are_never_used_by_the_outbox(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", "p-1", 100_000) as outbox:
        first = outbox.reserve_msg_id()  # before any message: the sequence starts here
        ids = [outbox.put("state", "t", b"x")]
        reserved: list[str] = []
        threads = [
            threading.Thread(target=lambda: reserved.append(outbox.reserve_msg_id())) for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids.append(outbox.put("alarm", "t", b"y"))
        everything = [first, *reserved, *ids]
        assert len(set(everything)) == len(everything)
        assert all(i.startswith("p-1:") for i in everything)
        assert int(ids[-1].split(":")[1]) > max(int(r.split(":")[1]) for r in reserved)
    with Outbox(tmp_path / "o.sqlite", "p-1", 100_000) as again:  # reopened: still not reused
        assert again.put("state", "t", b"z") not in everything


def test_drift_confirm_s_is_read_and_a_negative_or_text_value_is_refused(tmp_path: Path) -> None:
    path = write_starting_agent_toml(tmp_path / "ok" / "agent.toml")
    assert load_agent_config(path).agent.drift_confirm_s == 0.0  # the starting file's value
    path.write_text(path.read_text().replace("drift_confirm_s = 0.0", "drift_confirm_s = 3600", 1))
    assert load_agent_config(path).agent.drift_confirm_s == 3600.0
    for bad in ("-1", '"an hour"', "nan"):
        path.write_text(path.read_text().replace("drift_confirm_s = 3600", f"drift_confirm_s = {bad}", 1))
        with pytest.raises(ConfigError) as err:
            load_agent_config(path)
        assert "drift_confirm_s" in str(err.value)
        path.write_text(path.read_text().replace(f"drift_confirm_s = {bad}", "drift_confirm_s = 3600", 1))
