"""`/metrics`: Prometheus exposition for the web process, plus every other process.

- Counters and histograms live in the process that increments them. With
  `PROMETHEUS_MULTIPROC_DIR` set (``make run`` sets it for web, worker and beat), each
  process writes its samples to files there and this view merges them, so metrics of
  Celery workers appear here too. Without it only this process's samples are shown.
- Apps may register *scrape-time collectors* (values read from PostgreSQL when scraped,
  e.g. queue sizes) with `register_scrape_collector`; they are added in both modes (a
  multiprocess registry otherwise ignores collectors registered on the default one).
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

_scrape_collectors: list = []


def register_scrape_collector(collector) -> None:
    """Add `collector` (an object with `collect()`) to every scrape. Idempotent per class."""
    if not any(type(c) is type(collector) for c in _scrape_collectors):
        _scrape_collectors.append(collector)


class _Scrape:
    def __init__(self, base):
        self.base = base

    def collect(self):
        yield from self.base.collect()
        for collector in _scrape_collectors:
            yield from collector.collect()


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        base = CollectorRegistry()
        multiprocess.MultiProcessCollector(base)
    else:
        base = REGISTRY
    return HttpResponse(generate_latest(_Scrape(base)), content_type=CONTENT_TYPE_LATEST)
