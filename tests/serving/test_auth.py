"""API keys with scopes, constant-time matching, per-key rate limits, body limits, and no
internals in error responses."""

import asyncio
import json

import httpx
import pytest

from lmrec.errors import ConfigError
from lmrec.runs import Run
from lmrec.serving import EventStore, ServiceState, create_app
from lmrec.serving.auth import KeyRing, KeySpec, digest

READ, WRITE, ADMIN = "read-key-0123456789", "write-key-0123456789", "admin-key-0123456789"


def client_calls(app, calls):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                     base_url="http://t") as c:
            return [await c.request(m, url, **kw) for m, url, kw in calls]

    return asyncio.run(go())


def ring(read_requires_key=False, rate=None):
    return KeyRing([KeySpec(name="r", key=READ, scope="read", rate_per_minute=rate),
                    KeySpec(name="w", sha256=digest(WRITE), scope="write"),
                    KeySpec(name="a", key=ADMIN, scope="admin")], read_requires_key)


def test_scopes_are_ordered(itemknn_run, tmp_path):
    app = create_app(ServiceState(Run.open(itemknn_run), EventStore(tmp_path / "e.db")), keys=ring())
    event = {"events": [{"user_id": "u1", "item_id": 101}]}
    r = client_calls(app, [
        ("GET", "/recommend/u1", {}),  # reads are open unless the keys file says otherwise
        ("POST", "/events", {"json": event}),
        ("POST", "/events", {"json": event, "headers": {"X-API-Key": READ}}),
        ("POST", "/events", {"json": event, "headers": {"X-API-Key": WRITE}}),
        ("POST", "/events", {"json": event, "headers": {"X-API-Key": "wrong-key-0123456789"}}),
        ("DELETE", "/users/u2", {"headers": {"X-API-Key": WRITE}}),
        ("DELETE", "/users/u2", {"headers": {"X-API-Key": ADMIN}}),
    ])
    assert [x.status_code for x in r] == [200, 401, 403, 201, 401, 403, 200]
    assert r[2].json()["detail"] == "this key's scope is 'read'; the request needs 'write'"


def test_reads_can_require_a_key_and_keys_are_rate_limited(itemknn_run, tmp_path):
    app = create_app(ServiceState(Run.open(itemknn_run), EventStore(tmp_path / "e.db")),
                     keys=ring(read_requires_key=True, rate=3))
    key = {"headers": {"X-API-Key": READ}}
    r = client_calls(app, [("GET", "/recommend/u1", {})] + [("GET", "/recommend/u1", key)] * 4
                     + [("GET", "/health", {})])
    assert [x.status_code for x in r] == [401, 200, 200, 200, 429, 200]  # health stays open for probes
    assert "rate limit of 3 requests per minute" in r[4].json()["detail"] and int(r[4].headers["retry-after"]) >= 1
    # A route that checks two scopes (read on the router, admin on the route) charges once.
    limited = KeyRing([KeySpec(name="a", key=ADMIN, scope="admin", rate_per_minute=2)])
    app2 = create_app(ServiceState(Run.open(itemknn_run), EventStore(tmp_path / "e2.db")), keys=limited)
    admin = {"headers": {"X-API-Key": ADMIN}}
    r = client_calls(app2, [("DELETE", "/users/u3", admin), ("DELETE", "/users/u4", admin),
                            ("DELETE", "/users/u5", admin)])
    assert [x.status_code for x in r] == [200, 200, 429]


def test_identify_compares_every_key():
    keys = ring()
    assert keys.identify(WRITE).name == "w" and keys.identify(ADMIN).name == "a"
    assert keys.identify("nope") is None and keys.identify(None) is None


def test_keys_file_is_validated(tmp_path):
    good = tmp_path / "keys.toml"
    good.write_text(f'read_requires_key = true\n[[keys]]\nname = "app"\nsha256 = "{digest(READ)}"\n'
                    'scope = "read"\nrate_per_minute = 60\n')
    assert KeyRing.from_file(good).identify(READ).rate_per_minute == 60
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"keys": [{"name": "x", "key": "short", "scope": "root"}]}))
    with pytest.raises(ConfigError, match="keys.0.key: String should have at least 16 characters"):
        KeyRing.from_file(bad)
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"keys": [{"name": "x", "key": READ, "sha256": digest(READ)}]}))
    with pytest.raises(ConfigError, match="exactly one of key and sha256"):
        KeyRing.from_file(both)
    with pytest.raises(ConfigError, match="no such file"):
        KeyRing.from_file(tmp_path / "none.toml")


def test_bodies_over_the_limit_and_errors_without_internals(itemknn_run, tmp_path, monkeypatch):
    state = ServiceState(Run.open(itemknn_run), EventStore(tmp_path / "e.db"))
    app = create_app(state, max_body_bytes=1000)
    big = {"events": [{"user_id": f"u{i}", "item_id": 101} for i in range(100)]}
    monkeypatch.setattr(ServiceState, "recommend_user", lambda *a, **k: 1 / 0)
    r = client_calls(app, [("POST", "/events", {"json": big}), ("GET", "/recommend/u1", {})])
    assert r[0].status_code == 413 and "over 1,000 bytes" in r[0].json()["detail"]
    assert r[1].status_code == 500
    text = r[1].text
    assert "Traceback" not in text and "ZeroDivision" not in text and "/work" not in text and ".py" not in text
