"""FHIR Bulk Data export (HL7 Bulk Data Access IG 2.0.0,
https://hl7.org/fhir/uv/bulkdata/STU2/export.html).

- `request`: the kick-off parameters (`_outputFormat`, `_type`, `_since`,
  `patient`), read from a query string or a Parameters body.
- `access`: who may export (registry and operator clients with the
  `bulk-export` role) and which types their scopes cover.
- `jobs`: the job table as a queue: create, claim with a lease, heartbeat,
  complete, fail, cancel, expire.
- `selection`: the SQL that reads the stored JSON page by page.
- `files`: the NDJSON files of one attempt.
- `runner`: runs claimed jobs; the same loop serves `vaxhub export work` and
  the API process's background thread.
- `manifest`: the completion manifest a status poll returns.
"""
