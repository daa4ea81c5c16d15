"""API keys with scopes and per-key rate limits.

Scopes are ordered: ``read`` (recommendations, explanations, search) < ``write`` (events,
relations) < ``admin`` (adding items, forgetting users); a key has one scope and everything below
it. Whenever any key is configured, write and admin endpoints need a key of that scope; read
endpoints need one only with ``read_requires_key``. Keys are compared as SHA-256 digests with
``hmac.compare_digest`` against every configured key, so neither the comparison nor the order of
the keys leaks timing. A key's ``rate_per_minute`` is enforced with a token bucket (429 with
Retry-After once it is spent).

Keys file (TOML or JSON), given to ``lmrec serve --keys FILE``::

    read_requires_key = false
    [[keys]]
    name = "shop-frontend"
    sha256 = "9f86d081..."       # or key = "..." (the digest keeps the secret out of the file)
    scope = "read"
    rate_per_minute = 600
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lmrec.errors import ConfigError

Scope = Literal["read", "write", "admin"]
RANK = {"read": 0, "write": 1, "admin": 2}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    key: str | None = Field(None, min_length=16, description="the key itself (or give its sha256)")
    sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$")
    scope: Scope = "read"
    rate_per_minute: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_secret(self) -> KeySpec:
        if (self.key is None) == (self.sha256 is None):
            raise ValueError("give exactly one of key and sha256")
        return self


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    read_requires_key: bool = False
    keys: list[KeySpec] = Field(min_length=1)


class KeyRing:
    """The configured keys; ``check`` is what every protected route calls."""

    def __init__(self, keys: list[KeySpec], read_requires_key: bool = False) -> None:
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise ConfigError("API keys: names must be unique")
        self.keys = [(k, bytes.fromhex(k.sha256 or digest(k.key))) for k in keys]
        self.read_requires_key = read_requires_key
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, last refill time)
        self._lock = threading.Lock()

    @classmethod
    def single(cls, key: str) -> KeyRing:
        """``--api-key KEY``: one admin key, reads open, no rate limit (the behaviour before scopes)."""
        # Not validated for length: --api-key predates the keys file and short keys in scripts.
        return cls([KeySpec.model_construct(name="api-key", key=key, sha256=None, scope="admin",
                                            rate_per_minute=None)])

    @classmethod
    def from_file(cls, path: str | Path) -> KeyRing:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--keys {path}: no such file")
        try:
            raw = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
            spec = KeysFile.model_validate(raw)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be parsed ({exc})") from None
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{path}: {problems}") from None
        return cls(spec.keys, spec.read_requires_key)

    def identify(self, presented: str | None) -> KeySpec | None:
        if not presented:
            return None
        d = bytes.fromhex(digest(presented))
        found = None
        for spec, expected in self.keys:  # every key compared, whichever matches
            if hmac.compare_digest(d, expected):
                found = spec
        return found

    def check(self, presented: str | None, scope: Scope, *, charge: bool = True) -> KeySpec | None:
        """The key's spec (None: no key, and none needed), or an ``AuthError``; ``charge``: count the
        request against the key's rate (once per request, however many scopes a route checks)."""
        spec = self.identify(presented)
        if spec is None:
            if scope == "read" and not self.read_requires_key:
                return None
            raise AuthError(401, "X-API-Key header missing or wrong")
        if RANK[spec.scope] < RANK[scope]:
            raise AuthError(403, f"this key's scope is {spec.scope!r}; the request needs {scope!r}")
        if charge and spec.rate_per_minute is not None:
            wait = self._take(spec)
            if wait > 0:
                raise AuthError(429, f"rate limit of {spec.rate_per_minute} requests per minute reached for key "
                                f"{spec.name!r}", {"Retry-After": str(max(1, round(wait)))})
        return spec

    def _take(self, spec: KeySpec) -> float:
        """Take one token from the key's bucket; 0 if granted, else seconds until one is free."""
        rate = spec.rate_per_minute / 60.0  # tokens per second; the bucket holds a minute's worth
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(spec.name, (float(spec.rate_per_minute), now))
            tokens = min(float(spec.rate_per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[spec.name] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[spec.name] = (tokens - 1.0, now)
            return 0.0


class AuthError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers
