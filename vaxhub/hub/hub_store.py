"""The hub's FHIR store, with what every write of a record also does: its
AuditEvent, and the registry verification and master-patient-index link it
queues, in the write's own transaction. Every process that stores records
(the API, the MLLP listener, the import command) builds it here, so none
stores a record the hub would not audit, verify or link."""

from __future__ import annotations

from sqlalchemy import Engine

from vaxhub.hub.audit.listener import AuditListener
from vaxhub.hub.audit.trail import AuditTrail
from vaxhub.hub.mpi.enqueue import LinkEnqueuer
from vaxhub.hub.storage.store import FhirStore
from vaxhub.hub.verification.enqueue import VerificationEnqueuer
from vaxhub.settings import Settings


def hub_store(engine: Engine, settings: Settings) -> tuple[FhirStore, AuditTrail]:
    trail = AuditTrail(engine, chains=settings.audit_chains)
    listeners = [AuditListener(trail), VerificationEnqueuer(), LinkEnqueuer(verification_wait=settings.mpi_verification_wait_seconds)]
    return FhirStore(engine, listeners=listeners), trail
