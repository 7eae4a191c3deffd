"""The store's tables as SQLAlchemy Core metadata: what queries are built from.

Alembic revisions in ``migrations/versions/`` create these tables; a contract
test checks that a migrated database and this metadata agree, so a change here
needs a new revision. May import: SQLAlchemy only.

Timestamps are BIGINT microseconds since the Unix epoch (UTC) everywhere: the
same type and the same meaning on SQLite and PostgreSQL (no engine-specific
time zone handling), exact (no float rounding), and cheap to ``COPY`` in
binary (8 bytes, no text parsing). See ADR 0004.
"""

from __future__ import annotations

import sqlalchemy as sa


def key_string(length: int) -> sa.types.TypeEngine[str]:
    """A short identifier column: byte-order collation on PostgreSQL, as on SQLite.

    ``COLLATE "C"`` makes PostgreSQL sort ids the way SQLite's default BINARY
    collation does (so ``devices()`` lists in the same order on both engines)
    and compares index keys with ``memcmp`` instead of the locale, which is
    measurably faster for the readings primary key.
    """
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


# SQLite only makes an INTEGER PRIMARY KEY an alias of the rowid (autoincrementing);
# PostgreSQL gets a BIGINT so dead letters can never run out of ids.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

METADATA = sa.MetaData()

devices = sa.Table(
    "devices",
    METADATA,
    sa.Column("device_id", key_string(64), primary_key=True),
    sa.Column("site", key_string(64), nullable=False),
    sa.Column("profile_id", key_string(64), nullable=False),
    sa.Column("group_name", key_string(64), nullable=False),
    sa.Column("registered_at_us", sa.BigInteger(), nullable=False),
)

# The idempotency ledger: one row per stored message. A redelivery finds its
# (device_id, msg_id) here with the same payload hash and writes nothing.
messages = sa.Table(
    "messages",
    METADATA,
    sa.Column(
        "device_id",
        key_string(64),
        sa.ForeignKey("devices.device_id", name="fk_messages_device_id"),
        primary_key=True,
    ),
    sa.Column("msg_id", key_string(128), primary_key=True),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Column("received_at_us", sa.BigInteger(), nullable=False),
    # Readings the message carried (non-NaN cells), whether or not they were new.
    sa.Column("readings", sa.Integer(), nullable=False),
    sqlite_with_rowid=False,
)

# Narrow rows, one per reading. No foreign key to devices: a reading is only
# ever written together with its message's ledger row (which has one), and a
# per-row foreign-key check would cost a lookup for every one of millions of rows.
readings = sa.Table(
    "readings",
    METADATA,
    sa.Column("device_id", key_string(64), primary_key=True),
    sa.Column("sensor", key_string(64), primary_key=True),
    sa.Column("ts_us", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("value", sa.Double(), nullable=False),
    # WITHOUT ROWID: SQLite stores the rows in the primary-key b-tree itself
    # instead of a rowid table plus a separate index of the same keys.
    sqlite_with_rowid=False,
)

# Text columns (not bounded strings) for everything taken from a rejected
# message: a dead letter must be storable whatever garbage arrived.
dead_letters = sa.Table(
    "dead_letters",
    METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("received_at_us", sa.BigInteger(), nullable=False),
    sa.Column("topic", sa.Text(), nullable=False),
    sa.Column("device_id", sa.Text(), nullable=True),
    sa.Column("msg_id", sa.Text(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.Index("ix_dead_letters_reason_received_at_us", "reason", "received_at_us"),
    sa.Index("ix_dead_letters_received_at_us", "received_at_us"),
)

# The audit trail (revision 0002): append-only, hash-chained; see pumpops.audit
# and ADR 0006. ``seq`` is given by the writer (the tail's + 1, under a lock),
# never by the database, so it is the number the hash covers. ``payload`` is
# the canonical JSON text, kept byte for byte as it was hashed.
audit = sa.Table(
    "audit",
    METADATA,
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("time_us", sa.BigInteger(), nullable=False),
    sa.Column("actor", sa.Text(), nullable=False),
    sa.Column("action", sa.Text(), nullable=False),
    sa.Column("subject", sa.Text(), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # Revision 0008: ``<key id>:<Ed25519 hex>`` by the hub's audit key; NULL on
    # entries written before (unsigned legacy). Not covered by ``hash``.
    sa.Column("signature", sa.Text(), nullable=True),
    sa.Index("ix_audit_subject_seq", "subject", "seq"),
    sa.Index("ix_audit_time_us", "time_us"),
)

# Alias history (revision 0003): MLflow keeps only an alias's current version,
# so every change is a row here. An open row (``to_us`` NULL) is the alias's
# current holder; setting the alias again closes it and opens the next. See
# pumpops.registry and ADR 0007.
alias_history = sa.Table(
    "alias_history",
    METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("group_name", key_string(64), nullable=False),
    sa.Column("alias", key_string(128), nullable=False),
    sa.Column("model_name", sa.Text(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("from_us", sa.BigInteger(), nullable=False),
    sa.Column("to_us", sa.BigInteger(), nullable=True),
    sa.Column("set_by", sa.Text(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Index("ix_alias_history_group_alias_from_us", "group_name", "alias", "from_us"),
)

# Lifecycle events (revision 0003): stored before they are published on MQTT,
# so a broker outage loses nothing. ``seq`` is given by the database; readers
# page through events by it. ``payload`` is canonical JSON text.
events = sa.Table(
    "events",
    METADATA,
    sa.Column("seq", _ID, primary_key=True, autoincrement=True),
    sa.Column("time_us", sa.BigInteger(), nullable=False),
    sa.Column("kind", key_string(64), nullable=False),
    sa.Column("subject", sa.Text(), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Index("ix_events_kind_seq", "kind", "seq"),
    sa.Index("ix_events_time_us", "time_us"),
)

# Releases (revision 0004): one row per ``pumpops release create``; ``targets``
# is the comma-separated target ids, ``record`` canonical JSON of what was
# built per target and why. See pumpops.release.
releases = sa.Table(
    "releases",
    METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.Text(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("group_name", key_string(64), nullable=False),
    sa.Column("targets", sa.Text(), nullable=False),
    sa.Column("created_us", sa.BigInteger(), nullable=False),
    sa.Column("created_by", sa.Text(), nullable=False),
    sa.Column("bundle_root", sa.Text(), nullable=False),
    sa.Column("record", sa.Text(), nullable=False),
    sa.Index("ix_releases_group_created_us", "group_name", "created_us"),
)

# Agent messages (revision 0005): alarms, summaries, drift reports and state
# from the device agents, one row per message id (``<device_id>:<seq>``, unique
# across the fleet, so the key alone). ``seq`` is the integer after the last
# ``:`` kept as its own column so that a device's messages sort numerically
# (``p-1:10`` after ``p-1:9``). ``body`` is the JSON text the agent sent. No
# foreign key to devices: an agent may report before its device is registered.
# See docs/protocol.md, "Agent messages".
agent_messages = sa.Table(
    "agent_messages",
    METADATA,
    sa.Column("msg_id", key_string(128), primary_key=True),
    sa.Column("device_id", key_string(64), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("site", key_string(64), nullable=False),
    sa.Column("kind", key_string(16), nullable=False),
    # Part of the key since revision 0009 (PostgreSQL partitions by it; a replay carries the same time).
    sa.Column("ts_us", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("received_at_us", sa.BigInteger(), nullable=False),
    sa.Column("agent_version", sa.Text(), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Index("ix_agent_messages_device_kind_ts_us", "device_id", "kind", "ts_us"),
    sa.Index("ix_agent_messages_device_seq", "device_id", "seq"),
)

# Rollouts (revision 0006): one row per staged rollout, keyed by its id; ``state``
# is the rollout state machine's JSON (pumpops.rollout), rewritten at every step
# while ``created_at_us`` stays, so a hub restarted mid-rollout resumes it.
rollouts = sa.Table(
    "rollouts",
    METADATA,
    sa.Column("rollout_id", key_string(128), primary_key=True),
    sa.Column("group_name", key_string(64), nullable=False),
    sa.Column("release", sa.Text(), nullable=False),
    sa.Column("status", key_string(32), nullable=False),
    sa.Column("state", sa.Text(), nullable=False),
    sa.Column("created_at_us", sa.BigInteger(), nullable=False),
    sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
    sa.Index("ix_rollouts_group_created_at_us", "group_name", "created_at_us"),
    sa.Index("ix_rollouts_created_at_us", "created_at_us"),
)

# Fleet alerts (revision 0006): fleet-level conditions such as a drifting group.
# Opened once per id (opening again changes nothing), closed at most once
# (``closed_at_us`` NULL while open). ``detail`` is JSON text of an object.
fleet_alerts = sa.Table(
    "fleet_alerts",
    METADATA,
    sa.Column("alert_id", key_string(128), primary_key=True),
    sa.Column("group_name", key_string(64), nullable=False),
    sa.Column("kind", key_string(64), nullable=False),
    sa.Column("opened_at_us", sa.BigInteger(), nullable=False),
    sa.Column("closed_at_us", sa.BigInteger(), nullable=True),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Index("ix_fleet_alerts_group_opened_at_us", "group_name", "opened_at_us"),
    sa.Index("ix_fleet_alerts_opened_at_us", "opened_at_us"),
)

# Alarm feedback (revision 0006): a technician's verdict on an alarm, one row per
# alarm id (``<device_id>:<started_ms>``); the newest verdict replaces older ones
# (the audit trail keeps them all). ``device_id`` is the id's part before its
# last ``:``, its own column so feedback can be selected by device.
alarm_feedback = sa.Table(
    "alarm_feedback",
    METADATA,
    sa.Column("alarm_id", key_string(128), primary_key=True),
    sa.Column("device_id", key_string(64), nullable=False),
    sa.Column("verdict", key_string(16), nullable=False),
    sa.Column("actor", sa.Text(), nullable=False),
    sa.Column("note", sa.Text(), nullable=False),
    sa.Column("at_us", sa.BigInteger(), nullable=False),
    sa.Index("ix_alarm_feedback_device_at_us", "device_id", "at_us"),
    sa.Index("ix_alarm_feedback_at_us", "at_us"),
)

# API tokens (revision 0007): one row per ``pumpops tokens create``; only the
# SHA-256 of the secret token is kept (a 256-bit random token needs no slow
# hash). Refused once revoked or expired; never deleted. See pumpops.web.
api_tokens = sa.Table(
    "api_tokens",
    METADATA,
    sa.Column("token_id", key_string(32), primary_key=True),
    sa.Column("name", key_string(64), nullable=False),
    sa.Column("role", key_string(16), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("created_at_us", sa.BigInteger(), nullable=False),
    sa.Column("created_by", sa.Text(), nullable=False),
    sa.Column("expires_at_us", sa.BigInteger(), nullable=True),
    sa.Column("revoked_at_us", sa.BigInteger(), nullable=True),
    sa.Index("ix_api_tokens_token_sha256", "token_sha256", unique=True),
    sa.Index("ix_api_tokens_name", "name"),
)

# Alarm acknowledgements (revision 0007): one row per alarm id, the first
# acknowledgement kept (``INSERT ... ON CONFLICT DO NOTHING``); the audit trail
# keeps every one. ``device_id`` is the id's part before its last ``:``.
alarm_acks = sa.Table(
    "alarm_acks",
    METADATA,
    sa.Column("alarm_id", key_string(128), primary_key=True),
    sa.Column("device_id", key_string(64), nullable=False),
    sa.Column("actor", sa.Text(), nullable=False),
    sa.Column("note", sa.Text(), nullable=False),
    sa.Column("at_us", sa.BigInteger(), nullable=False),
    sa.Index("ix_alarm_acks_device_id", "device_id"),
)

# Indexes of revision 0007 on agent messages, for the HTTP API: alarms newest
# first across the fleet, and the event stream's poll by receipt time.
sa.Index("ix_agent_messages_kind_ts_us", agent_messages.c.kind, agent_messages.c.ts_us)
sa.Index("ix_agent_messages_kind_received_at_us", agent_messages.c.kind, agent_messages.c.received_at_us)

# Revision 0010: agents' summaries and alarms summed per device, hour and model
# (``_aggregates.py``); written by the incremental monitor, pruned with summaries.
agent_hour_aggregates = sa.Table(
    "agent_hour_aggregates",
    METADATA,
    sa.Column("device_id", key_string(64), primary_key=True),
    sa.Column("hour_us", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("model", key_string(200), primary_key=True),
    sa.Column("summaries", sa.Integer(), nullable=False),
    sa.Column("alarms_raised", sa.BigInteger(), nullable=False),
    sa.Column("period_ms", sa.BigInteger(), nullable=False),
    sa.Column("scored", sa.Integer(), nullable=False),
    sa.Column("p50_sum", sa.Double(), nullable=False),
    sa.Column("p50_n", sa.Integer(), nullable=False),
    sa.Column("p95_max", sa.Double(), nullable=True),
    sa.Column("score_max", sa.Double(), nullable=True),
    sa.Column("mean_wsum", sa.Double(), nullable=False),
    sa.Column("mean_w", sa.BigInteger(), nullable=False),
    sa.Column("alarm_messages", sa.Integer(), nullable=False),
    sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
    sa.Index("ix_agent_hour_aggregates_hour_us", "hour_us"),
)
