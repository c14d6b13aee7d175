"""Retention: tables that grow without bound stay fast; what expires goes.

- `months`: calendar months in UTC, the unit of audit partitions and archives.
- `partitions`: PostgreSQL monthly partitions of `audit_event` and
  `audit_patient`: created ahead, rows moved out of DEFAULT, dropped.
- `audit_archive`: an audit month past retention written to a gzip NDJSON file
  with its sha256 and chain positions, then removed from the database behind a
  per-chain checkpoint; `verify_archives` checks the files against the trail.
- `short_lived`: expired one-time codes, used assertion ids, rate-limit
  windows and finished bulk exports.
- `run`: `run_retention`, one pass of all of it (what `vaxhub retention run`
  does), under an advisory lock on PostgreSQL.

Health records (`resource`, `resource_version`) are never deleted here.
"""
