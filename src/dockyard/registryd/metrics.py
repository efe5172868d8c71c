"""Prometheus metrics of one registry (its own CollectorRegistry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Requests, bytes, upload sessions, garbage collection."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("registry_http_requests", "HTTP requests", ["method", "route", "code"], registry=r)
        self.latency = Histogram("registry_http_request_duration_seconds", "request duration", ["method", "route"], registry=r)
        self.bytes_received = Counter("registry_bytes_received", "blob bytes received", registry=r)
        self.bytes_sent = Counter("registry_bytes_sent", "blob and manifest bytes sent", registry=r)
        self.uploads = Gauge("registry_upload_sessions", "upload sessions open in this process", registry=r)
        self.gc_runs = Counter("registry_gc_runs", "garbage collections finished", registry=r)
        self.gc_freed = Counter("registry_gc_freed_bytes", "bytes freed by garbage collection", registry=r)
        self.gc_blobs = Counter("registry_gc_deleted_blobs", "blobs deleted by garbage collection", registry=r)

    def bytes_in(self, n: int) -> None:
        self.bytes_received.inc(n)

    def bytes_out(self, n: int) -> None:
        self.bytes_sent.inc(n)

    def upload_started(self) -> None:
        self.uploads.inc()

    def upload_finished(self) -> None:
        self.uploads.dec()

    def render(self) -> bytes:
        return generate_latest(self.registry)
