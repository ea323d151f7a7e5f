"""Joining Ray from a thread that then ends (a page's script run, a job's worker): later calls from other threads
still work. They used to hang in ray.nodes(), which froze the Class page."""

from __future__ import annotations

import threading

import ray

from cifar_lab import cluster


def test_a_connection_made_on_a_thread_that_ends_serves_every_later_thread():
    answers: list = []

    def on_a_thread(work) -> None:
        thread = threading.Thread(target=lambda: answers.append(work()), daemon=True)
        thread.start()
        thread.join(60)
        assert not thread.is_alive(), "a call to Ray hung"

    try:
        on_a_thread(lambda: cluster.connect("local"))  # like the first page that needs the cluster
        on_a_thread(lambda: cluster.cluster_slots("local"))  # like the Class page's next redraw
        on_a_thread(lambda: [n.alive for n in cluster.nodes()])
    finally:
        ray.shutdown()
    assert answers[1] >= 1 and answers[2] == [True]
