"""The one Settings object, read from `VAXHUB_` environment variables.

Built by `load_settings()` at start-up and passed down; nothing reads the
environment deeper in the code.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    sql_echo: bool = False


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (tests, CLI flags) on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
