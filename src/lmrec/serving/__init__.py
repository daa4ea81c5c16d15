"""Serve: an HTTP API over a run, with live event ingestion into a durable event store."""

from lmrec.serving.app import create_app
from lmrec.serving.state import ServiceState
from lmrec.serving.store import EventStore

__all__ = ["EventStore", "ServiceState", "create_app"]
