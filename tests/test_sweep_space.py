"""What a sweep varies, as typed after --param: grids, ranges, and the mistakes refused before any trial starts."""

from __future__ import annotations

import pytest

from cifar_lab.config import preset
from cifar_lab.sweep_space import Param, check_space, grid_points, parse_param, trial_count


def test_a_grid_is_typed_by_its_setting():
    assert parse_param("lr=0.5,1,2") == Param("lr", (0.5, 1.0, 2.0))
    assert parse_param("width=32,48").values == (32, 48)
    assert parse_param("flip=true,false").values == (True, False)
    assert parse_param("opt=sgd,adamw").values == ("sgd", "adamw")
    assert parse_param("--label-smoothing=0.1,0.2").name == "label_smoothing"  # the flag's spelling works too


def test_a_range_is_drawn_from_and_may_be_logarithmic():
    assert parse_param("lr=0.1:2") == Param("lr", (), 0.1, 2.0, False)
    assert parse_param("lr=0.01:1:log").log
    assert parse_param("width=16:64").text() == "width=16:64"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("lr", "NAME=V1,V2"),
        ("speed=1,2", "not a setting"),
        ("lr=0.5,fast", "'fast' is not a valid lr"),
        ("lr=0.5,0.5", "given twice"),
        ("width=3,2000", "out of range"),
        ("opt=sgd,rmsprop", "choose one of"),
        ("lr=2:1", "low end must be below"),
        ("weight_decay=0:0.1:log", "above 0"),
        ("opt=sgd:adamw", "not a number"),
        ("minutes=1,2", "how every trial runs"),
        ("lr=0.1:1:cubic", "NAME=LOW:HIGH"),
    ],
)
def test_mistakes_are_refused_saying_how_to_write_it(text, says):
    with pytest.raises(ValueError, match=says):
        parse_param(text)


def test_the_whole_grid_is_checked_against_the_preset_before_a_trial_starts():
    base = preset("classroom")  # muon: fastnet only
    with pytest.raises(ValueError, match="muon"):
        check_space(base, [parse_param("arch=fastnet,cnn")])
    with pytest.raises(ValueError, match="swept twice"):
        check_space(base, [parse_param("lr=0.5,1"), parse_param("lr=2,3")])
    check_space(base, [parse_param("lr=0.5,1"), parse_param("width=32,48")])


def test_the_trial_count_is_the_grid_times_the_samples():
    params = [parse_param("lr=0.5,1,2"), parse_param("width=32,48"), parse_param("label_smoothing=0:0.3")]
    assert trial_count(params, 1) == 6 and trial_count(params, 3) == 18
    assert len(grid_points(params)) == 6
