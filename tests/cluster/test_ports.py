"""Ports for the servers the cluster, the bench and the tests start: outside the kernel's ephemeral range."""

from __future__ import annotations

import socket

from assistant.cluster import servers
from assistant.cluster.servers import free_port, port_free


def test_free_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    start = servers._ephemeral_start()
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)  # never handed out twice, even before anything binds them
    assert all(p < start for p in ports)
    assert all(port_free(p) for p in ports)


def test_a_run_of_ports_is_free_from_its_first_to_its_last() -> None:
    first = free_port(3)
    assert all(port_free(first + i) for i in range(3)) and first + 2 < servers._ephemeral_start()
    assert free_port() not in range(first, first + 3)


def test_a_port_a_server_listens_on_is_not_free() -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", free_port()))
        s.listen()
        assert not port_free(s.getsockname()[1])
