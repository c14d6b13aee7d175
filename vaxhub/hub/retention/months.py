"""Calendar months (UTC), the unit in which the audit trail is partitioned and archived."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def of(cls, moment: datetime) -> "Month":
        return cls(moment.year, moment.month)

    @classmethod
    def parse(cls, text: str) -> "Month":
        """From `2016-03`."""
        year, month = text.split("-")
        return cls(int(year), int(month))

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1)

    @property
    def end(self) -> datetime:
        return self.next().start

    def next(self) -> "Month":
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def plus(self, months: int) -> "Month":
        index = self.year * 12 + (self.month - 1) + months
        return Month(index // 12, index % 12 + 1)

    @property
    def suffix(self) -> str:
        """The partition name suffix: `y2016m03`."""
        return f"y{self.year:04d}m{self.month:02d}"

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def retention_cutoff(now: datetime, retention_months: int) -> datetime:
    """Months ending on or before this moment are past retention: with 120 months
    and a November 2026 clock, everything before November 2016."""
    return Month.of(now).plus(-retention_months).start
