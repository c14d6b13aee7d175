"""How this package reports problems: one style throughout.

Invalid input raises `vaxhub.errors.InvalidResource` carrying one `Issue`
(FHIR issue code "value", with the location the caller gave). Suspicious but
acceptable input (a CCCD whose sex digit disagrees with the record) is
returned as `Issue`s of severity "warning"; nothing is raised for those.
"""

from __future__ import annotations

from vaxhub.errors import InvalidResource, Issue


def invalid(message: str, expression: str | None = None, code: str = "value") -> InvalidResource:
    """An error for the caller to raise."""
    return InvalidResource(message, [Issue(message, expression, code=code)])


def warning(message: str, expression: str | None = None) -> Issue:
    """A non-blocking finding."""
    return Issue(message, expression, code="business-rule", severity="warning")
