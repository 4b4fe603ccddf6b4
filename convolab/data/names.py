"""Class names as they are read from folder names, tar members and labels-CSV cells: the same name in every
locale and in either Unicode normalization.

A folder's name is bytes; Python decodes it with the locale's file-system encoding, so that `猫/` was the class
`ç\\x8c«` in an ISO-8859-1 shell and `\\udce7\\udc8c\\udcab` in the C locale, and a checkpoint or the image
cache carried those into UTF-8 shells. A class name is the bytes read as UTF-8 (undecodable bytes kept as
surrogates, shown as `\\xff` by `printable`). And macOS hands back names decomposed (NFD: `e` and a
combining accent) where typed text is composed (NFC): both are read as NFC, so that they are one class.
File paths are left as the system gives them: one re-encoded would not open.
"""
from __future__ import annotations

import os
import unicodedata
from pathlib import Path

# tarfile.open's: member names read as UTF-8 (its default: the locale's encoding), undecodable bytes kept
TAR_NAMES = {"encoding": "utf-8", "errors": "surrogateescape"}


def same_form(name: str) -> str:
    """`name` in Unicode's composed form (NFC): the form a class name is read in and compared in."""
    return unicodedata.normalize("NFC", name)


def class_name(name: str, from_system: bool = True) -> str:
    """The class a folder named `name` (as os.listdir gives it; `from_system` False: a tar member's part, already
    read as UTF-8) stands for: its bytes read as UTF-8, in NFC."""
    if from_system:
        name = os.fsencode(name).decode("utf-8", "surrogateescape")
    return same_form(name)


def printable(name: str) -> str:
    """A file or class name for files of results (CSV, JSON): bytes that are not UTF-8 (kept by Python as
    surrogates) written as `\\xff`; a UTF-8 name that an ASCII locale read as surrogates, as the characters it is."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def shown(name: str) -> str:
    """A file or class name for a line a person reads (a message, a table on the console): `printable`, and
    control characters as Python writes them (`\\t`, `\\n`: a name holding a newline broke a one-line message
    or a table's row in two). Other characters, a no-break space among them, stay as they are."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in printable(name))


def as_spelled_on_disk(path: Path, name: str) -> Path:
    """`path / name` if it exists, else `name` in the other normalization (NFC or NFD) where that one exists (a
    CSV typed in NFC naming files that a Mac wrote in NFD, or the reverse); `path / name` if none does. `name` is
    text read from a UTF-8 file: its bytes are the file's name, whatever the locale's encoding."""
    spellings = [name, unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)]
    files = [path / os.fsdecode(s.encode("utf-8", "surrogateescape")) for s in dict.fromkeys(spellings)]
    return next((f for f in files if os.path.lexists(f)), files[0])


__all__ = ["TAR_NAMES", "as_spelled_on_disk", "class_name", "printable", "same_form", "shown"]
