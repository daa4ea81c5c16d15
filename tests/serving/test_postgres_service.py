"""The service on a PostgreSQL event store: the same answers as on SQLite, and a database that
goes away gives 503 with a clear message, then the service recovers by itself."""

from __future__ import annotations

from lmrec.runs import Run
from lmrec.serving import ServiceState, create_app
from lmrec.serving.store import open_store
from tests.conftest import asgi_caller


def test_database_loss_gives_503_and_the_service_recovers(itemknn_run, postgres_server, postgres_url):
    call = asgi_caller(create_app(ServiceState(Run.open(itemknn_run), open_store(postgres_url))))
    events = {"events": [{"user_id": "n1", "item_id": 101, "timestamp": 5}]}
    assert call("POST", "/events", json=events).status_code == 201
    postgres_server.stop()
    try:
        r = call("GET", "/recommend/n1?k=3")
        assert r.status_code == 503 and "unavailable" in r.json()["detail"]
        assert "Traceback" not in r.text
        assert call("POST", "/events", json=events).status_code == 503  # not acknowledged, not stored
    finally:
        assert postgres_server.restart() is None
    r = call("GET", "/users/n1")
    assert r.status_code == 200 and r.json()["events"] == 1  # the refused write is not there
    assert call("POST", "/events", json=events).status_code == 201
    assert call("GET", "/users/n1").json()["events"] == 2


def test_a_server_restart_between_requests_costs_no_request(itemknn_run, postgres_server, postgres_url):
    """Connections are not checked on every checkout (a round trip per request): the pool's
    connections that a restart broke must still be replaced before anyone gets a 503."""
    state = ServiceState(Run.open(itemknn_run), open_store(postgres_url))
    call = asgi_caller(create_app(state))
    events = {"events": [{"user_id": "n2", "item_id": 101, "timestamp": 5}]}
    assert call("POST", "/events", json=events).status_code == 201
    postgres_server.stop()
    assert postgres_server.restart() is None
    assert call("GET", "/recommend/n2?k=3").status_code == 200
    assert call("POST", "/events", json=events).status_code == 201
    assert call("GET", "/users/n2").json()["events"] == 2
