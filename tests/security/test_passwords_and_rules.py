"""Pure parts of ``pumpops.security``: hashes (checked with Mosquitto's own tool), the rules, the CA."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from pumpops.errors import ConfigError, InputError
from pumpops.security import (
    AccessPolicy,
    CertificateAuthority,
    filter_within,
    hash_password,
    mosquitto_hash,
    new_password,
    topic_matches,
    verify_mosquitto_hash,
    verify_password,
)

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def test_new_passwords_are_long_and_distinct() -> None:
    passwords = {new_password() for _ in range(100)}
    assert len(passwords) == 100
    assert min(len(p) for p in passwords) >= 43


def test_mosquitto_hash_of_mosquitto_passwd_verifies(tmp_path: Path) -> None:
    path = tmp_path / "passwords"
    subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", str(path), "alice", "s3cret"], check=True)
    encoded = path.read_text().strip().split(":", 1)[1]
    assert encoded.startswith("$7$")
    assert verify_mosquitto_hash(encoded, "s3cret")
    assert not verify_mosquitto_hash(encoded, "s3cret ")


def test_our_mosquitto_hash_has_mosquitto_passwd_layout(tmp_path: Path) -> None:
    # mosquitto_passwd -U rehashes plain "user:password" lines; its output has the same shape as ours
    path = tmp_path / "plain"
    path.write_text("bob:pw\n")
    subprocess.run([MOSQUITTO_PASSWD, "-U", str(path)], check=True)
    theirs = path.read_text().strip().split(":", 1)[1].split("$")
    ours = mosquitto_hash("pw").split("$")
    assert [len(p) for p in theirs[3:]] == [len(p) for p in ours[3:]]  # salt and hash, base64
    assert ours[1] == theirs[1] == "7"
    assert verify_mosquitto_hash(mosquitto_hash("pw"), "pw")


@pytest.mark.parametrize("bad", ["", "$6$abc$def", "$7$x$AAAA$AAAA", "$7$101$!!!$AAAA"])
def test_malformed_mosquitto_hash_is_bad_input(bad: str) -> None:
    with pytest.raises(InputError, match=r"\$7\$"):
        verify_mosquitto_hash(bad, "pw")


def test_hub_records_are_argon2() -> None:
    record = hash_password("pw")
    assert record.startswith("$argon2id$")
    assert verify_password(record, "pw")
    assert not verify_password(record, "PW")
    assert not verify_password("not a hash", "pw")


POLICY = AccessPolicy("pumpops/v1")
ALLOWED = [
    ("p-1", "publish", "pumpops/v1/s/p-1/telemetry"),
    ("p-1", "publish", "pumpops/v1/other-site/p-1/state"),
    ("p-1", "publish", "pumpops/v1/s/p-1/alarms"),
    ("p-1", "subscribe", "pumpops/v1/+/p-1/desired"),
    ("p-1", "receive", "pumpops/v1/s/p-1/desired"),
    ("hub-rollout", "publish", "pumpops/v1/s/p-1/desired"),
    ("hub-events", "publish", "pumpops/v1/events/model.promoted"),
    ("hub-ingest", "subscribe", "pumpops/v1/+/+/+"),
    ("hub-ingest", "subscribe", "$share/ingest/pumpops/v1/+/+/+"),
    ("hub-ingest", "receive", "pumpops/v1/s/p-1/telemetry"),
]
DENIED = [
    ("p-1", "publish", "pumpops/v1/s/p-2/telemetry"),
    ("p-1", "publish", "pumpops/v1/s/p-1/desired"),
    ("p-1", "publish", "pumpops/v1/s/p-2/desired"),
    ("p-1", "publish", "pumpops/v1/events/model.promoted"),
    ("p-1", "publish", "pumpops/v1/s/p-1/telemetry/extra"),
    ("p-1", "publish", "other/v1/s/p-1/telemetry"),
    ("p-1", "subscribe", "pumpops/v1/+/+/desired"),
    ("p-1", "subscribe", "pumpops/v1/#"),
    ("p-1", "subscribe", "#"),
    ("p-1", "receive", "pumpops/v1/s/p-2/desired"),
    ("p-1", "receive", "pumpops/v1/s/p-1/telemetry"),
    ("hub-ingest", "publish", "pumpops/v1/s/p-1/desired"),
    ("hub-ingest", "publish", "pumpops/v1/s/p-1/telemetry"),
    ("hub-events", "publish", "pumpops/v1/s/p-1/desired"),
    ("hub-rollout", "publish", "pumpops/v1/events/rollout.started"),
    ("hub-rollout", "publish", "pumpops/v1/s/hub-rollout/telemetry"),
    ("hub-other", "publish", "pumpops/v1/s/hub-other/telemetry"),
    ("a+b", "publish", "pumpops/v1/s/a+b/telemetry"),
    (None, "publish", "pumpops/v1/s/p-1/telemetry"),
    ("", "subscribe", "pumpops/v1/+/p-1/desired"),
]


@pytest.mark.parametrize(("user", "action", "topic"), ALLOWED)
def test_policy_allows(user: str, action: str, topic: str) -> None:
    assert POLICY.allows(user, action, topic)  # type: ignore[arg-type]


@pytest.mark.parametrize(("user", "action", "topic"), DENIED)
def test_policy_denies(user: str | None, action: str, topic: str) -> None:
    assert not POLICY.allows(user, action, topic)  # type: ignore[arg-type]


def test_rendered_acl_is_the_same_rules() -> None:
    text = POLICY.mosquitto_acl()
    assert "pattern write pumpops/v1/+/%u/telemetry" in text
    assert "pattern read pumpops/v1/+/%u/desired" in text
    assert "user hub-rollout\ntopic write pumpops/v1/+/+/desired" in text
    assert "pattern write pumpops/v1/+/%u/desired" not in text
    assert "topic write pumpops/v1/events/#" in text
    rules = [line for line in text.splitlines() if line.startswith(("topic ", "pattern "))]
    assert len(rules) == 6 + 2 + 1 + 1


def test_bad_prefix_is_refused() -> None:
    with pytest.raises(ConfigError, match="topic prefix"):
        AccessPolicy("pumpops/#")


@pytest.mark.parametrize(
    ("topic", "filt", "expected"),
    [("a/b/c", "a/+/c", True), ("a/b/c", "a/#", True), ("a/b", "a/b/c", False), ("a/b/c", "a/b", False)],
)
def test_topic_matches(topic: str, filt: str, expected: bool) -> None:
    assert topic_matches(topic, filt) is expected


def test_filter_within() -> None:
    assert filter_within("a/b/+", "a/+/+")
    assert not filter_within("a/#", "a/+")
    assert not filter_within("a/+", "a/b")


def test_server_certificate_names_its_hosts_and_chains_to_the_ca() -> None:
    ca = CertificateAuthority.create()
    issued = ca.issue_server(["broker.example", "10.0.0.5"])
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["broker.example"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
    again = CertificateAuthority.load(ca.cert_pem, ca.key_pem)
    assert again.cert_pem == ca.cert_pem


def test_server_certificate_needs_a_host_name() -> None:
    with pytest.raises(ConfigError, match="--hostname"):
        CertificateAuthority.create().issue_server([])


def test_unreadable_ca_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="broker CA"):
        CertificateAuthority.load(b"not pem", b"not pem")
