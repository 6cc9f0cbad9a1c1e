"""gunicorn settings, read automatically by `gunicorn config.wsgi:application` (Procfile).

Environment: PORT or WEB_BIND (default 127.0.0.1:8000), WEB_CONCURRENCY (workers),
WEB_THREADS, WEB_TIMEOUT.
"""

import os
import tempfile

bind = os.environ.get("WEB_BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("WEB_THREADS", "1"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
max_requests = 5000
max_requests_jitter = 500
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG", "1") == "1" else None
control_socket_disable = True  # several servers may share one machine (tests, benchmarks)
# Give workers their own temp dir in RAM-backed storage when available.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()  # noqa: S108


def on_starting(server):
    # Prometheus multi-process mode: every worker writes its samples here, /metrics merges them.
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
