"""Certificates as part of the hub: issuing them from stored records, the
signing keys, revocation, trust lists and verification.

The codecs live in `vaxhub.certificates` (a library without hub imports);
this package reads the FHIR store, checks identity verification, signs with
the key store configured in Settings and keeps what it issued, revoked and
trusts in the database (migration 0007).

    linked_records  the records of one person (the seam for the patient index)
    doses           completed COVID-19 doses → dose numbers, series, colour
    signing_keys    the key store of Settings, cached, created in development
    identity_check  the population registry's verdict on a Patient
    issuance        build, sign and store the DCC, the SMART Health Card, the DDCC
    downloads       each stored certificate in each format (text, PNG, SVG, PDF…)
    trust_store     trust lists (ours, imported), revocations, the verifier's Trust
    service         all of it behind one object, built from Settings (app.state.certificates)
    tables          the `certificate` and trust tables
"""
