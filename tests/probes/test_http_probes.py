"""Every HTTP probe (http_probes.PROBES) against a real server on 127.0.0.1: expected status, one error shape, no
traceback or submitted value in the response or the server log."""

from __future__ import annotations

import pytest
from http_probes import PROBES, TOKEN, probe_server
from probe_kit import assert_http_outcome, params, run_http_probe


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    with probe_server(tmp_path_factory.mktemp("probe-server")) as server:
        yield server


def test_probe_ids_are_unique():
    ids = [p.id for p in PROBES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("probe", params(PROBES))
def test_http_probe(probe, shared_server, tmp_path):
    if probe.fresh_server:
        with probe_server(tmp_path / "server") as server:
            response, log = run_http_probe(probe, server, TOKEN)
            assert_http_outcome(probe, response, log, server)
        return
    response, log = run_http_probe(probe, shared_server, TOKEN)
    assert_http_outcome(probe, response, log, shared_server)
