"""The NDJSON files of one export attempt.

Each attempt writes into its own folder (`EXPORT_DIR/<job>/<lease token>`), so
a worker that lost its lease and has not noticed yet can never write into the
files of the attempt that replaced it. Files hold one type each, named
`<Type>-<n>.ndjson`, and a new one starts every `max_per_file` resources.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import BinaryIO

import orjson

FILE_NAME = re.compile(r"^[A-Z][A-Za-z]{1,39}-\d{1,6}\.ndjson$")


def job_folder(export_dir: Path, job_id: str) -> Path:
    return export_dir / job_id


def remove_job_files(export_dir: Path, job_id: str) -> None:
    shutil.rmtree(job_folder(export_dir, job_id), ignore_errors=True)


class NdjsonFiles:
    def __init__(self, folder: Path, max_per_file: int):
        self.folder = folder
        self.max_per_file = max_per_file
        self.folder.mkdir(parents=True, exist_ok=True)
        self._files: list[dict] = []  # {type, file, count}, in the order written
        self._open: tuple[str, BinaryIO, dict] | None = None

    def write(self, rtype: str, lines: list[str]) -> None:
        """Append resources (one JSON text each) to the type's current file."""
        while lines:
            handle, entry = self._current(rtype)
            room = self.max_per_file - entry["count"]
            chunk, lines = lines[:room], lines[room:]
            handle.write(("\n".join(chunk) + "\n").encode("utf-8"))
            entry["count"] += len(chunk)

    def write_outcomes(self, messages: list[str], severity: str = "warning") -> None:
        outcomes = [
            orjson.dumps({"resourceType": "OperationOutcome",
                          "issue": [{"severity": severity, "code": "not-supported", "diagnostics": m}]}).decode()
            for m in messages
        ]
        self.write("OperationOutcome", outcomes)

    def close(self) -> tuple[list[dict], list[dict]]:
        """Close every file; returns the output files and the OperationOutcome (error) files."""
        self._close_open()
        output = [f for f in self._files if f["type"] != "OperationOutcome"]
        errors = [f for f in self._files if f["type"] == "OperationOutcome"]
        return output, errors

    def _current(self, rtype: str) -> tuple[BinaryIO, dict]:
        if self._open is not None and self._open[0] == rtype and self._open[2]["count"] < self.max_per_file:
            return self._open[1], self._open[2]
        self._close_open()
        number = sum(1 for f in self._files if f["type"] == rtype) + 1
        entry = {"type": rtype, "file": f"{rtype}-{number}.ndjson", "count": 0}
        self._files.append(entry)
        handle = open(self.folder / entry["file"], "wb")  # noqa: SIM115 - closed by _close_open
        self._open = (rtype, handle, entry)
        return handle, entry

    def _close_open(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None

    def discard(self) -> None:
        self._close_open()
        shutil.rmtree(self.folder, ignore_errors=True)
