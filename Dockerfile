# Nano Banana — one container: waitress serving the Flask app on port 8000.
# Everything the app writes (database, images, logs, secret key) is under the
# /data volume; the image itself stays read-only for the app user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in their own layer: rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

# A fixed uid/gid so a bind-mounted data folder can be chown'ed to match
# (`chown -R 10001:10001 ./data`).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /data \
    && chown app:app /data

# The code belongs to root: the app can read it, not change it.
COPY . .

# MALLOC_ARENA_MAX: glibc gives each waitress thread its own malloc arena and
# keeps freed megabyte-sized image buffers in them; two arenas cut peak memory
# by about a third at no CPU cost (docs/benchmarks.md).
# MALLOC_MMAP_THRESHOLD_: a fixed threshold (glibc otherwise raises it to the
# largest block freed, 16 MB for Pillow's image blocks) keeps every buffer of
# 1 MB or more out of the arenas, so a decoded upload's memory goes back to
# the system when it is freed: after a burst of hostile uploads the process
# fell back to 113 MB instead of staying at 1.5 GB, and peaked at 1.2 GB
# instead of 2.1 GB (bench/hostile_uploads.py).
ENV APP_ENV=production \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=1048576 \
    DATA_DIR=/data \
    LOG_DIR=/data/logs \
    HOST=0.0.0.0 \
    PORT=8000

VOLUME ["/data"]
USER app
EXPOSE 8000

# slim has no curl; the standard library does the probe (bypassing any
# HTTP_PROXY from .env). An error status or no answer raises: exit 1, unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]

# Runs the migrations, then waitress; SIGTERM (docker stop) shuts down cleanly.
CMD ["python", "wsgi.py"]
