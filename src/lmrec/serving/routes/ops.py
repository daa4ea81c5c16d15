from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from lmrec.serving.deps import get_state
from lmrec.serving.state import ServiceState

router = APIRouter(tags=["operations"])
REGISTRY = CollectorRegistry()
REQUESTS = Counter("lmrec_requests_total", "HTTP requests", ["route", "method", "status"], registry=REGISTRY)
LATENCY = Histogram("lmrec_request_seconds", "HTTP request latency", ["route"], registry=REGISTRY,
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))


def observe(route: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route).observe(seconds)


@router.get("/health")
def health(state: ServiceState = Depends(get_state)) -> dict:
    return {"status": "ok", "model": state.run.model_name, "items": len(state.catalogue.items),
            "users": state.n_users, "events_stored": state.store.count()}


@router.get("/metrics")
def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
