"""The master patient index on the hub: one person per human, whatever the sites typed.

    site Patient written ──(same transaction)──> mpi_record.state = queued   (enqueue)
    verification_result recorded ──(watched by id)──┘
                                                  │  vaxhub mpi work (worker)
                                                  ▼
    linker: registry-verified CCCD → certain; else blocks → candidates →
            Fellegi–Sunter with term counts → link / review / new person
                                                  │
                                                  ▼
    mpi_record (who belongs to whom), mpi_event (history), mpi_review (queue)
    golden Patient per person (FHIR store, audited), rebuilt at the end of a pass

- `enqueue`: the write listener queuing site Patients; refuses writes of golden ones.
- `candidates`, `frequencies`: blocking-key candidates, term counts, scoring per person.
- `linker`: one record linked online; `index`: membership changes and golden rebuilds
  inside one unit of work; `golden`: the golden Patient's content.
- `operations`: link, unlink, merge, un-merge, review decisions, with history.
- `worker`: the link worker (queued records claimed and linked in batches, one
  transaction and one AuditEvent each); `batch`: re-linking the whole index in one run.
- `match`: `Patient/$match`; `views`: what operators read; `reach`: `$everything` of a person.
- `service`: `MasterPatientIndex`, what the API, the worker and the CLI share.

Searches and citizens' reach read the links in SQL
(`vaxhub.hub.storage.person_reach`), so a link is effective when it commits.
"""
