"""The one Settings object, read from `VAXHUB_` environment variables.

Built by `load_settings()` at start-up and passed down; nothing reads the
environment deeper in the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


DEVELOPMENT_CERT_PASSPHRASE = "vaxhub-development-only"
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "changethis", "placeholder", "secret", "password", "passphrase", DEVELOPMENT_CERT_PASSPHRASE}
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VAXHUB_", env_file=None, extra="ignore")

    database_url: str = Field(
        "sqlite:///./vaxhub.db",
        description="SQLAlchemy URL; SQLite is the embedded default, PostgreSQL the production store.",
    )
    base_url: str | None = Field(
        None,
        description="Public base URL of the FHIR endpoint (behind a proxy); by default taken from each request.",
    )
    auto_migrate: bool = Field(True, description="Apply database migrations when the hub starts.")
    default_page_size: int = Field(20, ge=1, le=1000)
    max_page_size: int = Field(500, ge=1, le=5000)
    max_bundle_entries: int = Field(1000, ge=1, description="Largest transaction/batch Bundle accepted.")
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="Largest request body accepted.")
    db_pool_size: int = Field(10, ge=1)
    api_threads: int = Field(
        40, ge=1, le=1000,
        description="Requests one API process works on at once (the thread pool of its synchronous routes); "
                    "more wait in its event loop. A few per core spends less CPU on switching between them.",
    )
    writes_first: bool = Field(
        True,
        description="When an API process has more requests than api_threads, waiting writes (sites' Bundles, HL7 v2 "
                    "messages, resource writes) are let in before waiting reads (vaxhub.hub.api.writes_first).",
    )
    sql_echo: bool = False
    pdf_process: bool = Field(
        True,
        description="A served API process draws certificate PDFs in a child process of its own, at a lower CPU "
                    "priority (vaxhub.certificates.pdf_process); false draws them on its request threads.",
    )
    pdf_nice: int = Field(10, ge=0, le=19, description="Niceness added to the certificate PDF process.")
    gc_thresholds: str = Field(
        "50000,20,100",
        description="Cyclic garbage collector thresholds of the long-running processes (API workers, outbox workers), "
                    "applied with the start-up heap frozen (vaxhub.hub.gc_tuning); empty keeps CPython's 700,10,10.",
    )

    @field_validator("gc_thresholds")
    @classmethod
    def _three_counts(cls, value: str) -> str:
        from vaxhub.hub.gc_tuning import parse_thresholds

        parse_thresholds(value)  # refuses a bad value at start-up, not at the first request
        return value

    # Identity verification (`vaxhub worker`)
    population_registry_wsdl: str | None = Field(
        None, description="WSDL of the population registry (URL or file); the worker needs it."
    )
    population_registry_address: str | None = Field(
        None, description="Service address overriding the WSDL's soap:address (an X-Road security server)."
    )
    registry_user_id: str | None = Field(None, description="X-Road userId sent with each registry call.")
    social_insurance_url: str | None = Field(
        None, description="API root of the social insurance registry; when set, the worker cross-checks each person there."
    )
    social_insurance_api_key: str | None = Field(None, description="X-API-Key sent to the social insurance registry.")
    registry_timeout: float = Field(10.0, gt=0, description="Seconds one registry call may take.")
    verification_concurrency: int = Field(32, ge=1, le=1024, description="Registry calls in flight per worker process.")
    verification_batch_size: int = Field(
        20, ge=1, le=100,
        description="Jobs per population registry call (and per social insurance call) where the registry's WSDL offers "
        "VerifyCitizens; 1 makes one call per job.",
    )
    mpi_verification_wait_seconds: float = Field(
        0.0, ge=0, le=3600,
        description="Hold a new or re-identified site Patient's link this long for its registry answer, so the worker links it "
                    "once, on the verified CCCD (the answer makes it due at once). 0 links at once and again after the answer.",
    )
    verification_lease_seconds: float = Field(
        60.0, gt=0, description="How long a claimed job stays with its worker before others may take it."
    )
    verification_max_attempts: int = Field(10, ge=1, description="Attempts before a job becomes a dead letter.")
    verification_claim_every: float = Field(
        0.25, ge=0,
        description="While registry calls are in flight, a worker claims new jobs at most this often (seconds), so that "
                    "Patients arriving one by one travel in full batches; 0 claims whenever a call slot frees.",
    )
    verification_backoff_base: float = Field(1.0, gt=0, description="First retry delay ceiling, in seconds (doubles).")
    verification_backoff_cap: float = Field(300.0, gt=0, description="Largest retry delay ceiling, in seconds.")
    registry_breaker_window: int = Field(20, ge=1, description="Recent calls a worker weighs to open the breaker.")
    registry_breaker_failure_ratio: float = Field(0.8, gt=0, le=1, description="Share of failures that opens it.")
    registry_breaker_cooldown: float = Field(30.0, gt=0, description="Seconds an opened breaker waits before a probe.")
    statement_timeout_ms: int = Field(30000, ge=100, description="PostgreSQL statement timeout per query.")
    pg_bin_dir: Path | None = Field(None, description="Folder of pg_dump and pg_restore for `vaxhub backup`/`restore`; default the newest /usr/lib/postgresql/*/bin, then PATH.")

    environment: Literal["development", "production"] = Field(
        "development", description="In production the hub refuses to invent keys or run without configured secrets."
    )
    data_dir: Path = Field(Path("./vaxhub-data"), description="Keys and other files the hub keeps.")
    # Access control (SMART Backend Services for systems; OTP or national e-ID for citizens).
    auth_signing_key_file: Path | None = Field(None, description="PEM P-256 key signing access tokens; default data_dir/auth-signing-key.pem.")
    auth_issuer: str = Field("urn:vaxhub:hub", description="`iss` of the hub's access tokens.")
    auth_audience: str = Field("urn:vaxhub:fhir", description="`aud` of the hub's access tokens.")
    public_url: str | None = Field(None, description="External root URL (token URL = public_url + /auth/token); default from each request.")
    access_token_seconds: int = Field(300, ge=30, le=3600)
    patient_token_seconds: int = Field(900, ge=60, le=3600)
    clock_skew_seconds: int = Field(60, ge=0, le=300)
    eid_issuer: str | None = Field(None, description="Issuer of national e-ID tokens accepted for citizen login.")
    eid_audience: str | None = None
    eid_jwks_url: str | None = None
    eid_jwks_file: Path | None = None
    eid_id_claim: str = Field("cccd", description="Claim of the e-ID token that holds the citizen's CCCD.")
    rate_limit_per_second: float = Field(50.0, gt=0, description="Sustained requests per second per caller, across all hub processes.")
    rate_limit_burst: int = Field(200, ge=1)
    rate_limit_backend: Literal["database", "redis", "memory"] = Field(
        "database", description="Where the rate-limit counters live: the database or Redis (shared by every hub process), or memory (one process, tests)."
    )
    rate_limit_local_share: bool = Field(
        True, description="Far from a caller's limit, each process allows the caller's requests itself and sends their count every half "
        "second, instead of asking the shared counter per request; a caller may then pass its burst by up to a twentieth of it per process.")
    redis_url: str | None = Field(None, description="Redis URL (redis://host:6379/0): the Redis rate-limit backend, and the drawn certificate downloads every API process shares.")
    # Operations: logs and metrics.
    log_format: Literal["json", "text"] | None = Field(None, description="Log lines as JSON objects or text; default json in production, text in development.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_token: SecretStr | None = Field(None, description="Bearer token Prometheus sends to GET /metrics (operators with the monitoring role may use their own token).")
    audit_chains: int = Field(32, ge=1, le=64, description="Parallel hash chains of the audit trail: each write holds one from its AuditEvent to its commit.")
    # Health certificates (EU DCC, SMART Health Cards, WHO DDCC:VS): `vaxhub keys init`.
    cert_keys_dir: Path | None = Field(None, description="Key store of the certificate signers (CSCA and document signers); default data_dir/cert-keys.")
    cert_passphrase: SecretStr | None = Field(None, description="Passphrase encrypting the signers' private keys; required (not a placeholder) in production.")
    cert_country: str = Field("VN", pattern=r"^[A-Z]{2}$", description="Issuing country (CWT `iss`, UVCI, certificate subjects).")
    cert_issuer: str = Field("Ministry of Health of Viet Nam", description="Certificate issuer named in each DCC (`v.is`), DDCC and PDF.")
    cert_valid_days: int = Field(365, ge=1, le=3650, description="Validity of an issued certificate (never beyond its signer's).")
    shc_issuer_url: str | None = Field(None, description="`iss` of SMART Health Cards (keys at iss + /.well-known/jwks.json); default public_url + /shc.")

    # FHIR Bulk Data export (`$export`; `vaxhub export work`).
    export_dir: Path | None = Field(None, description="Folder of export files, shared by every hub process and export worker; default data_dir/exports.")
    export_in_process: bool = Field(True, description="Run export jobs in a background thread of each API process (besides any `vaxhub export work`).")
    export_page_size: int = Field(1000, ge=1, le=100_000, description="Resources read per database round trip while exporting.")
    export_file_max_resources: int = Field(100_000, ge=1, description="Resources per NDJSON file before the next file of that type starts.")
    export_lease_seconds: float = Field(60.0, gt=0, description="How long a claimed export job stays with its worker without a heartbeat.")
    export_poll_seconds: float = Field(2.0, gt=0, description="How often an idle export worker looks for jobs.")
    export_settle_seconds: float = Field(
        5.0, ge=0, description="Wait after the transactionTime before reading, so writes begun before it have committed."
    )
    export_retention_hours: float = Field(24.0, gt=0, description="How long finished export files are kept.")
    export_max_active_per_client: int = Field(3, ge=1, description="Exports a client may have queued or running at once (429 beyond).")

    # Retention (`vaxhub retention run`, docs/operations/retention.md).
    audit_retention_months: int = Field(
        24, ge=1, description="Months of AuditEvents kept in the database; older months are archived to verified files (kept for the legal period), then dropped."
    )
    audit_partitions_ahead: int = Field(3, ge=1, le=24, description="Monthly audit partitions kept created ahead of the current month (PostgreSQL).")
    audit_archive_dir: Path | None = Field(None, description="Folder of archived audit months (NDJSON, gzip, with sha256); default data_dir/audit-archive.")
    export_job_record_days: int = Field(30, ge=0, description="Days an expired or cancelled export job's row is kept after its files are gone.")

    def effective_log_format(self) -> str:
        return self.log_format or ("json" if self.environment == "production" else "text")

    def signing_key_path(self) -> Path:
        return self.auth_signing_key_file or self.data_dir / "auth-signing-key.pem"

    def export_path(self) -> Path:
        return self.export_dir or self.data_dir / "exports"

    def audit_archive_path(self) -> Path:
        return self.audit_archive_dir or self.data_dir / "audit-archive"

    def cert_keys_path(self) -> Path:
        return self.cert_keys_dir or self.data_dir / "cert-keys"

    def cert_passphrase_bytes(self) -> bytes:
        """The key store passphrase; in development a fixed one stands in for a
        missing one, elsewhere a missing, short or placeholder passphrase is refused."""
        given = self.cert_passphrase.get_secret_value() if self.cert_passphrase else ""
        if self.environment == "development":
            return (given or DEVELOPMENT_CERT_PASSPHRASE).encode("utf-8")
        if given.strip().lower() in PLACEHOLDER_SECRETS or len(given) < 12:
            raise ValueError("VAXHUB_CERT_PASSPHRASE must be set to a real passphrase (12 characters or more) outside development")
        return given.encode("utf-8")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (tests, CLI flags) on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
