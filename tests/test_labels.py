"""Names people type (runs, owners): invisible characters dropped, controls and direction overrides refused."""

from __future__ import annotations

import pytest

from cifar_lab import cli
from cifar_lab.config import TrainConfig
from cifar_lab.labels import MAX_BYTES, clean_label, visible
from cifar_lab.runs import RunStore, clean_name

TINY = TrainConfig(
    arch="cnn", width=8, depth=1, batch_size=32, epochs=1, eval_subset=0, precision="fp32", device="cpu", threads=1
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ab\u200bc", "abc"),  # ZERO WIDTH SPACE
        ("\ufeffteam blue", "team blue"),  # BYTE ORDER MARK, as pasted from some editors
        ("a\u200db", "ab"),  # ZERO WIDTH JOINER
        ("  café 😀 ", "café 😀"),
    ],
)
def test_invisible_characters_are_dropped(text, expected):
    assert clean_label(text) == expected


@pytest.mark.parametrize(
    "text, named",
    [
        ("evil\u202egnp.exe", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("a\u2066b", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("nul\x00byte", "U+0000 NULL"),
        ("two\nlines", "U+000A LINE FEED"),
        ("tab\there", "U+0009 CHARACTER TABULATION"),
        ("\x1b[31mred", "U+001B ESCAPE"),
    ],
)
def test_control_and_direction_characters_are_refused_by_name(text, named):
    with pytest.raises(ValueError) as err:
        clean_label(text, what="owner")
    message = str(err.value)
    assert message.startswith("owner ") and named in message and "type it again without" in message


@pytest.mark.parametrize("text", ["", "   ", "\u200b", "\u200b\u200d\ufeff"])
def test_a_name_that_is_empty_once_invisible_characters_go_is_refused(text):
    with pytest.raises(ValueError, match="run name .* is not valid: it is empty"):
        clean_label(text)


def test_length_is_limited_in_characters_and_in_utf8_bytes():
    assert clean_label("x" * 100) == "x" * 100
    with pytest.raises(ValueError, match="101 characters; at most 100"):
        clean_label("x" * 101)
    assert clean_label("😀" * 60) == "😀" * 60  # 240 bytes: kept whole as a label (its file name is a slug)
    with pytest.raises(ValueError, match=f"244 bytes in UTF-8; at most {MAX_BYTES}"):
        clean_label("😀" * 61)  # 61 characters pass the character check; as a file name it would not leave room
    assert len(clean_label("é" * 100).encode() + b".lock") <= 255


def test_undecodable_bytes_from_the_command_line_are_refused():
    with pytest.raises(ValueError, match="U\\+DCFF"):
        clean_label("name\udcff")  # how Python passes an invalid UTF-8 byte in argv


def test_the_store_and_the_cli_use_it(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run_id = store.create_run(TINY, "zero\u200bwidth")
    assert store.get_run(run_id).name == "zerowidth" and clean_name(" x ") == "x"
    with pytest.raises(ValueError, match="U\\+202E"):
        store.rename(run_id, "a\u202eb")
    with pytest.raises(ValueError, match="U\\+202E"):
        store.create_run(TINY, "a\u202eb")
    assert cli.main(["runs", "--runs-db", str(store.path)]) == 0


def test_visible_shows_names_recorded_before_the_rules():
    assert visible("evil\u202egnp") == "evil<U+202E>gnp" and visible("plain 😀") == "plain 😀"
