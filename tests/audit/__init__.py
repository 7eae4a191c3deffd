"""Tests of the audit trail (a package, so its conftest does not clash with other test folders)."""
