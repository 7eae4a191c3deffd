"""An append-only, hash-chained log of every artifact and decision; verify and export.

Arrives with the audit issue. May import: store, errors, hashlib.
"""
