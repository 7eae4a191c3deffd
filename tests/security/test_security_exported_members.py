"""Pins the public API of ``pumpops.security``: a change to this list is a change users see."""

from __future__ import annotations

import pumpops.security

_PUBLIC = {
    "DEVICE_PUBLISH_KINDS",
    "HUB_IDENTITIES",
    "HUB_PREFIX",
    "SECURITY_DIR",
    "AccessPolicy",
    "AclRule",
    "BrokerFiles",
    "CertificateAuthority",
    "CredentialRegistry",
    "Identity",
    "IssuedCertificate",
    "broker_folder",
    "check_device_id",
    "filter_within",
    "hash_password",
    "make_private_dir",
    "mosquitto_config",
    "mosquitto_hash",
    "new_password",
    "refresh_password_file",
    "reload_broker",
    "topic_matches",
    "verify_mosquitto_hash",
    "verify_password",
    "write_broker_files",
    "write_private",
}


def test_security_exported_members_are_pinned() -> None:
    assert set(pumpops.security.__all__) == _PUBLIC
    for name in _PUBLIC:
        assert hasattr(pumpops.security, name), name
