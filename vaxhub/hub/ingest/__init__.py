"""The hub side of ingestion: store what the translators in `vaxhub.fhir.hl7v2`
and `vaxhub.fhir.tabular` produce through `process_bundle`, serve MLLP, run
import jobs."""
