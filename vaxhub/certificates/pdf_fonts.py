"""The font files a certificate PDF is drawn with.

fpdf2 parses the whole TrueType file on every `add_font` and cuts it down to
the glyphs used on every `output`; for DejaVu Sans (about 6,000 glyphs in
each of two styles) that is most of a certificate's drawing time. Nearly
every certificate needs only Latin letters and Vietnamese's, so each process
cuts both fonts down once (`prepare`, or its first certificate) to `CUT_TO`
(about 770 glyphs, without hinting or layout tables, which the PDF never
uses): drawing then takes about a third of the CPU. A document with
any other character (a Greek or Cyrillic name) is drawn with the full fonts,
so no letter DejaVu has is ever lost. The cut files live in a temporary folder
named after the process, removed when it exits; a process that ends without
running its exit handlers (killed, or a server's worker leaving through
`os._exit`) leaves its folder behind, and the next process to cut the fonts
removes every such folder whose process is gone.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from contextlib import ExitStack
from importlib import resources
from itertools import chain
from pathlib import Path

from fontTools import subset, ttLib

STYLES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
# Basic Latin, Latin-1, Latin Extended-A and -B (Ơ ơ Ư ư, and Romanian's ș ț),
# the combining marks Vietnamese uses, Latin Extended Additional's Vietnamese
# letters (U+1EA0–U+1EF9), general punctuation (– — ‘ ’ “ ” …) and the đồng sign.
CUT_TO = frozenset(chain(
    range(0x20, 0x7F), range(0xA0, 0x250), range(0x300, 0x324), range(0x1EA0, 0x1EFA), range(0x2010, 0x2028), (0x20AB,),
))

_lock = threading.Lock()
_full: dict[str, Path] = {}
_cut: dict[str, Path] = {}


def prepare() -> None:
    """Cut the fonts now. A serving process does it at start-up: cutting
    takes about a second of CPU, which its first certificate download would
    otherwise pay, at the moment many first downloads arrive together."""
    font_files("")


def font_files(text: str) -> dict[str, Path]:
    """The font file of each style (`STYLES`) to draw `text` with."""
    with _lock:
        if not _full:
            _prepare()
    return _cut if all(ord(c) in CUT_TO for c in text) else _full


PREFIX = "vaxhub-fonts-"


def sweep_left_behind(where: Path | None = None) -> int:
    """Remove the font folders (this user's) of processes that are gone; returns how many."""
    removed = 0
    for folder in Path(where or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid = folder.name[len(PREFIX):].partition("-")[0]
        try:
            if not pid.isdigit() or folder.stat().st_uid != os.getuid() or _alive(int(pid)):
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process holds the number now
    return True


def _prepare() -> None:
    files = ExitStack()  # the packaged fonts as files, for as long as the process runs
    atexit.register(files.close)
    sweep_left_behind()
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, folder, True)
    options = subset.Options()
    options.name_IDs = ["*"]  # the copyright and licence records stay with the font
    options.notdef_outline = True
    # Instructions for grid-fitting at small pixel sizes: PDF viewers draw
    # anti-aliased at any zoom and mostly ignore them, and they are a third
    # of the embedded font (a certificate PDF of 23 kB instead of 36 kB).
    options.hinting = False
    # fpdf2 drops the layout tables from every font it embeds (it would need
    # them only for HarfBuzz shaping, which the certificate does not use), so
    # carrying them here only makes each document's parse and cut dearer.
    # FFTM is FontForge's timestamps: nothing reads them, and the subsetter
    # warns it cannot cut them.
    options.drop_tables += ["FFTM", "GDEF", "GPOS", "GSUB"]
    for style, name in STYLES.items():
        full = Path(files.enter_context(resources.as_file(resources.files("vaxhub.certificates").joinpath("fonts", name))))
        font = ttLib.TTFont(full)
        cutter = subset.Subsetter(options)
        cutter.populate(unicodes=CUT_TO)
        cutter.subset(font)
        cut = folder / name
        font.save(cut)
        _full[style], _cut[style] = full, cut
