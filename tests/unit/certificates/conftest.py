"""Shared fixtures: a Vietnamese key store, signers and a sample holder."""

from __future__ import annotations

import datetime as dt

import pytest

from vaxhub.certificates.dcc import DccPerson, DccVaccination, new_uvci
from vaxhub.certificates.keys import KeyStore, Signer, create_csca, create_document_signer
from vaxhub.certificates.trust_list import TrustList

NOW = dt.datetime(2022, 5, 11, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="session")
def now() -> dt.datetime:
    return NOW


@pytest.fixture(scope="session")
def csca():
    return create_csca("VN", "Bo Y te", now=NOW - dt.timedelta(days=30))


@pytest.fixture(scope="session")
def es256_signer(csca) -> Signer:
    key, cert = create_document_signer(*csca, now=NOW - dt.timedelta(days=1))
    return Signer(cert, key)


@pytest.fixture(scope="session")
def ps256_signer(csca) -> Signer:
    key, cert = create_document_signer(*csca, algorithm="PS256", now=NOW - dt.timedelta(days=1))
    return Signer(cert, key)


@pytest.fixture
def trust(es256_signer, ps256_signer) -> TrustList:
    trust = TrustList()
    trust.add(es256_signer.certificate)
    trust.add(ps256_signer.certificate)
    return trust


@pytest.fixture
def holder() -> DccPerson:
    return DccPerson(family_name="Đặng", given_name="Thị Ngọc Hà", birth_date="1990-05-24")


@pytest.fixture
def second_dose() -> DccVaccination:
    return DccVaccination(
        vaccine="J07BX03",
        product="EU/1/20/1528",
        manufacturer="ORG-100030215",
        dose_number=2,
        total_doses=2,
        date=dt.date(2021, 11, 3),
        issuer="Ministry of Health of Viet Nam",
        certificate_id=new_uvci("VN"),
    )


@pytest.fixture
def keystore(tmp_path) -> KeyStore:
    store = KeyStore(tmp_path / "keys", b"correct horse battery staple")
    store.init("VN", "Bo Y te", now=NOW - dt.timedelta(days=1))
    return store
