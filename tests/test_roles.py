"""Who is the teacher, and who may act on a run."""

from __future__ import annotations

import pytest

from cifar_lab.roles import ENV_TEACHER_KEY, NotAllowed, Viewer, check_may_manage, check_teacher, is_teacher


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.1.1", "::1", "::ffff:127.0.0.1"])
def test_without_a_key_the_server_machine_itself_is_the_teacher(address):
    assert is_teacher(address, env={})
    assert is_teacher("192.168.1.20", env={}, own_addresses=["192.168.1.20"])  # the join address, on the laptop


@pytest.mark.parametrize("address", ["192.168.1.31", "10.0.0.7", "", None, "not an address", "::ffff:10.0.0.7"])
def test_without_a_key_every_other_address_is_a_participant(address):
    assert not is_teacher(address, env={}, own_addresses=["192.168.1.20"])


def test_with_a_key_only_whoever_types_it_is_the_teacher_from_any_address():
    env = {ENV_TEACHER_KEY: "s3cret"}
    assert not is_teacher("127.0.0.1", "", env)  # behind a proxy every visitor looks local
    assert not is_teacher("127.0.0.1", "s3cre", env) and not is_teacher("127.0.0.1", "s3cret ", env)
    assert is_teacher("10.0.0.7", "s3cret", env)


def test_a_participant_manages_only_their_own_runs_and_the_teacher_every_run():
    ada, teacher = Viewer("Ada"), Viewer("", teacher=True)
    assert ada.may_manage("ada ") and not ada.may_manage("Bob") and not ada.may_manage("")
    assert not Viewer("").may_manage("")  # no name typed: nobody's runs, not even the unowned ones
    assert teacher.may_manage("Bob") and teacher.owner == "teacher"
    with pytest.raises(NotAllowed, match="Run r1 is Bob's: only they or the teacher can delete it"):
        check_may_manage(ada, "Bob", "delete", "r1")
    check_may_manage(None, "Bob", "delete", "r1")  # the server itself (CLI, tests)
    with pytest.raises(NotAllowed, match="Only the teacher"):
        check_teacher(ada, "pause the queue")
