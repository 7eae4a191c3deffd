"""Broker identity and access: per-device credentials, the broker CA, and the access rules.

It owns the credentials registry of a workspace (:class:`CredentialRegistry`:
identities with argon2 and Mosquitto ``$7$`` hashes only, the hub services'
passwords, files 0600 in folders 0700), the small CA that signs the broker's
and devices' certificates (:class:`CertificateAuthority`), the access rules as
data (:class:`AccessPolicy`: rendered as a Mosquitto ``acl_file`` and decided
in-process for the embedded broker), and the Mosquitto configuration
(:func:`mosquitto_config`). ``pumpops devices`` and ``pumpops broker`` drive it;
the embedded broker's secure mode enforces the same rules.

May import: ``pumpops.errors``, ``pumpops.schema``, ``pumpops._atomic``,
cryptography, pwdlib, the stdlib (hub only: the edge agent never imports it).
"""

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.security._acl import (
        DEVICE_PUBLISH_KINDS,
        HUB_IDENTITIES,
        HUB_PREFIX,
        AccessPolicy,
        AclRule,
        filter_within,
        topic_matches,
    )
    from pumpops.security._broker_files import (
        BrokerFiles,
        broker_folder,
        refresh_password_file,
        reload_broker,
        write_broker_files,
    )
    from pumpops.security._mosquitto import mosquitto_config
    from pumpops.security._passwords import (
        hash_password,
        mosquitto_hash,
        new_password,
        verify_mosquitto_hash,
        verify_password,
    )
    from pumpops.security._pki import CertificateAuthority, IssuedCertificate
    from pumpops.security._registry import (
        SECURITY_DIR,
        CredentialRegistry,
        Identity,
        check_device_id,
        make_private_dir,
        write_private,
    )

_LAZY: dict[str, str] = {
    "DEVICE_PUBLISH_KINDS": "pumpops.security._acl",
    "HUB_IDENTITIES": "pumpops.security._acl",
    "HUB_PREFIX": "pumpops.security._acl",
    "AccessPolicy": "pumpops.security._acl",
    "AclRule": "pumpops.security._acl",
    "filter_within": "pumpops.security._acl",
    "topic_matches": "pumpops.security._acl",
    "BrokerFiles": "pumpops.security._broker_files",
    "broker_folder": "pumpops.security._broker_files",
    "refresh_password_file": "pumpops.security._broker_files",
    "reload_broker": "pumpops.security._broker_files",
    "write_broker_files": "pumpops.security._broker_files",
    "mosquitto_config": "pumpops.security._mosquitto",
    "hash_password": "pumpops.security._passwords",
    "mosquitto_hash": "pumpops.security._passwords",
    "new_password": "pumpops.security._passwords",
    "verify_mosquitto_hash": "pumpops.security._passwords",
    "verify_password": "pumpops.security._passwords",
    "CertificateAuthority": "pumpops.security._pki",
    "IssuedCertificate": "pumpops.security._pki",
    "SECURITY_DIR": "pumpops.security._registry",
    "CredentialRegistry": "pumpops.security._registry",
    "Identity": "pumpops.security._registry",
    "check_device_id": "pumpops.security._registry",
    "make_private_dir": "pumpops.security._registry",
    "write_private": "pumpops.security._registry",
}

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)

__all__ = [
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
]
