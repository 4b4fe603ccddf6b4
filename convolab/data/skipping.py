"""What --skip-bad-images leaves out of an image folder or archive, said: the files skipped (named), the empty
class folders, and the classes none of whose files could be read (left out, not trained as an output no image
teaches); once, by the first process of --nproc."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .archive import FileReader
from .decode import opens_as_image
from .layout import ImageEntry

log = logging.getLogger("convolab")

SAY_SKIPPED = 10  # files: the skipped ones a warning names (the rest counted)


def say_skipped(source: Any, cached: dict, whole: bool, hit: bool = False) -> None:
    """With --skip-bad-images, one warning naming the files skipped (the first SAY_SKIPPED), and (`hit`: the cache
    read, not made: the listing said it then) one naming the empty class folders left out; on every load, a cache
    hit too; by one process of --nproc."""
    if (count := int(cached.get("skipped", 0))) and main_rank():
        named = list(cached.get("skipped_files", []))
        more = f"; and {count - len(named)} more" if named and count > len(named) else ""
        log.warning("skipped %d unreadable or mismatched image%s of %s (`skip_bad_images`)%s%s", count,
                    "s" * (count > 1), source.path, ": " + "; ".join(named) if named else "", more)
    if hit:
        say_empty(source, cached.get("empty", []), whole)


def main_rank() -> bool:  # (every process of --nproc reads the data: what it says, said once)
    return os.environ.get("RANK", "0") == "0"


def say_empty(source: Any, empty: list[str], whole: bool) -> None:
    if empty and not whole and main_rank():
        log.warning("%s: left out the empty class folder%s %s (`skip_bad_images`)", source.path,
                    "s" * (len(empty) > 1), ", ".join(source.describe(e) for e in empty))


def classes_with_an_image(path: Path, reader: FileReader, entries: list[ImageEntry],
                           classes: list[str]) -> tuple[list[ImageEntry], list[str]]:
    """(Streamed, --skip-bad-images) The entries and classes without the classes none of whose files opens as an
    image: left out with a warning, as the cache leaves them out, not trained as an output no image teaches (a
    class's first file that opens is enough: one header a class, unless its files are bad)."""
    readable: set[str] = set()
    for entry in entries:
        if entry.class_name not in readable and _opens(reader, entry.location):
            readable.add(entry.class_name)
    lost = [c for c in classes if c not in readable]
    if not lost:
        return entries, classes
    say_lost_classes(path, lost)
    return [e for e in entries if e.class_name in readable], [c for c in classes if c in readable]


def _opens(reader: FileReader, location: str) -> bool:
    try:
        return opens_as_image(reader.read(location))
    except OSError:  # (a file that cannot be read: skipped by the workers too)
        return False


def say_lost_classes(path: Path, lost: list[str]) -> None:
    if main_rank():
        log.warning("%s: every image of class%s %s was skipped: %s left out, as an empty class folder is", path,
                    "es" * (len(lost) > 1), ", ".join(lost), "they are" if len(lost) > 1 else "it is")
