"""De-identification: pseudonymous user ids (keyed HMAC-SHA256) and coarser timestamps.

With ``privacy.pseudonymise = true`` a run never holds a raw user id: ids are replaced at
ingestion, before anything is indexed or written, by ``HMAC-SHA256(key, id)``; the key comes from
``LMREC_ID_KEY`` or ``privacy.key_file`` and is never written to the run. The service maps the raw
ids of requests with the same key, so clients keep using their own ids. Without the key, a run
cannot be linked back to the people in it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lmrec.data.vocab import Vocabulary
from lmrec.errors import ConfigError
from lmrec.privacy.dp import DPConfig

KEY_ENV = "LMREC_ID_KEY"
PREFIX = "p_"


class PrivacyConfig(BaseModel):
    """The run config's ``privacy`` section."""

    model_config = ConfigDict(extra="forbid")

    pseudonymise: bool = Field(False, description="replace user ids by a keyed HMAC-SHA256 at ingestion (key: "
                               f"${KEY_ENV} or key_file)")
    key_file: str | None = Field(None, description="file holding the pseudonymisation key (else $LMREC_ID_KEY)")
    encrypt: bool = Field(False, description="encrypt the run's personal data (events, user ids, relations) with "
                          "AES-256-GCM; key: $LMREC_DATA_KEY or data_key_file")
    data_key_file: str | None = Field(None, description="file holding the 32-byte data key (else $LMREC_DATA_KEY)")
    coarsen_time: Literal["none", "day", "week"] = Field(
        "none", description="round event timestamps down to the day or week (a quasi-identifier); the order of a "
        "user's events within one period is then their file order")
    dp: DPConfig | None = Field(None, description="user-level differential privacy of the trained model and the "
                                "popularity fallback, e.g. {epsilon = 8} (lmrec.privacy.dp; needs Opacus)")


def load_key(key_file: str | None) -> bytes:
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise ConfigError(f"privacy.key_file {key_file}: no such file")
        key = path.read_bytes().strip()
    else:
        key = os.environ.get(KEY_ENV, "").strip().encode()
    if len(key) < 16:
        raise ConfigError(f"privacy.pseudonymise needs a key of at least 16 bytes in ${KEY_ENV} or privacy.key_file "
                          "(e.g. `export LMREC_ID_KEY=$(openssl rand -hex 32)`); keep it: without it the service "
                          "cannot map users' ids")
    return key


class Pseudonymiser:
    """raw user id (any type, compared as text) -> ``p_`` + 32 hex digits of HMAC-SHA256."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, raw) -> str:
        text = str(raw).strip()
        if text.startswith(PREFIX) and len(text) == len(PREFIX) + 32:
            return text  # already a pseudonym (e.g. a run's own output fed back)
        return PREFIX + hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:32]

    @classmethod
    def of(cls, config: PrivacyConfig) -> Pseudonymiser | None:
        return cls(load_key(config.key_file)) if config.pseudonymise else None



class PseudonymVocabulary(Vocabulary):
    """A pseudonymised run's user vocabulary: lookups take the raw ids people use and map them with
    the key (read when first needed, so opening a run to evaluate it needs no key)."""

    def __init__(self, ids: list, config: PrivacyConfig) -> None:
        super().__init__(ids)
        self._config, self._map = config, None

    def coerce(self, original):
        if self._map is None:
            self._map = Pseudonymiser.of(self._config)
        return self._map(original)
