"""Names people type (a run's name, an owner): visible text only, short enough to become part of a file name."""

from __future__ import annotations

import unicodedata

MAX_CHARS = 100
# UTF-8 bytes: a label used whole as a file or folder name (an owner's folder, say) fits the 255 bytes most file
# systems allow, with room for a short suffix. 100 characters may take 400 bytes (an emoji is 4); checkpoint files
# take an ASCII slug of the label instead (run_files.slug).
MAX_BYTES = 240
# Direction controls reorder what is shown around them ("evil\u202egnp.exe" reads as "evilexe.png"): refused.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})  # controls, undecodable bytes, line/paragraph separators
CONTROL_NAMES = {
    0x00: "NULL",
    0x09: "CHARACTER TABULATION",
    0x0A: "LINE FEED",
    0x0D: "CARRIAGE RETURN",
    0x1B: "ESCAPE",
    0x7F: "DELETE",
}  # unicodedata.name() has none for controls


def clean_label(text: str, what: str = "run name", *, max_chars: int = MAX_CHARS) -> str:
    """`text` as a label to show to others: trimmed, invisible format characters (zero-width space and joiner,
    byte order mark, ...) removed; control and direction characters and overlong labels refused (ValueError)."""
    text = str(text)
    for position, char in enumerate(text, 1):
        if _refused(char):
            raise ValueError(
                f"{what} {text!r} is not valid: it contains {character_name(char)} at position "
                f"{position}, which would hide or disguise the text around it; type it again without "
                "that character"
            )
    label = "".join(c for c in text if unicodedata.category(c) != "Cf").strip()
    if not label:
        raise ValueError(
            f"{what} {text!r} is not valid: it is empty once spaces and invisible characters are "
            "removed; type a visible name"
        )
    if len(label) > max_chars:
        raise ValueError(
            f"{what} {label[:20]!r}... is not valid: it is {len(label)} characters; at most {max_chars} are allowed"
        )
    size = len(label.encode("utf-8"))
    if size > MAX_BYTES:
        raise ValueError(
            f"{what} {label[:20]!r}... is not valid: it is {size} bytes in UTF-8; at most {MAX_BYTES} "
            "fit in a file name (a letter takes 1 byte, an accented letter 2, an emoji 4): shorten it"
        )
    return label


def visible(text: str) -> str:
    """`text` with each character clean_label would refuse or drop written out as <U+XXXX>, for showing names
    recorded before these rules."""
    return "".join(f"<U+{ord(c):04X}>" if _refused(c) or unicodedata.category(c) == "Cf" else c for c in str(text))


def character_name(char: str) -> str:
    """e.g. "U+202E RIGHT-TO-LEFT OVERRIDE"."""
    name = CONTROL_NAMES.get(ord(char)) or unicodedata.name(char, "")
    if not name:
        name = "an undecodable byte" if unicodedata.category(char) == "Cs" else "a control character"
    return f"U+{ord(char):04X} {name}"


def _refused(char: str) -> bool:
    return char in BIDI_CONTROLS or unicodedata.category(char) in REFUSED_CATEGORIES
