"""bench.ports: test and benchmark servers get ports no other process can be handed."""

from __future__ import annotations

import socket

from bench import ports


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    got = [ports.free_port() for _ in range(50)]
    assert len(set(got)) == len(got)
    low = ports.ephemeral_low()
    start, end = ports.slice_bounds(ports.slice_of_process(), low)
    for port in got:
        assert start <= port < end < low + 1
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_xdist_workers_get_disjoint_slices() -> None:
    a = ports.slice_of_process({"PYTEST_XDIST_WORKER": "gw0"}, pid=5)
    b = ports.slice_of_process({"PYTEST_XDIST_WORKER": "gw1"}, pid=5)
    assert (a, b) == (0, 1)
    ra, rb = ports.slice_bounds(a, 32768), ports.slice_bounds(b, 32768)
    assert ra[1] <= rb[0]
    assert ports.slice_of_process({}, pid=35) == 35 % ports.SLICES


def test_ephemeral_low_reads_the_kernel_setting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "range"
    f.write_text("40000\t60999\n")
    assert ports.ephemeral_low(str(f)) == 40000
    assert ports.ephemeral_low(str(tmp_path / "missing")) == 32768


def test_a_taken_port_is_skipped(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Start at the slice's beginning, so the port after `first` is in the slice and the
    # cursor cannot wrap past the taken one (which would pass without skipping anything).
    start, end = ports.slice_bounds(ports.slice_of_process(), ports.ephemeral_low())
    monkeypatch.setattr(ports, "_cursor", start)
    with socket.socket() as s:
        first = ports.free_port()
        assert first + 2 < end
        s.bind(("127.0.0.1", first + 1))  # the next one in this slice is taken
        s.listen()
        second = ports.free_port()
        assert first + 1 < second < end
