"""Configuration: one class per environment, every value read from the
environment (and `.env`, loaded by python-dotenv before this module is used).

`.env.example` documents each variable; keep the two in step.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent

# `.env` beside the code; real environment variables win over it.
load_dotenv(BASE_DIR / ".env", override=False)


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_int(name: str, default: int) -> int:
    value = env_str(name)
    return int(value) if value is not None else default


def env_float(name: str, default: float) -> float:
    value = env_str(name)
    return float(value) if value is not None else default


def env_bool(name: str, default: bool = False) -> bool:
    value = env_str(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str) -> list[str]:
    value = env_str(name, "") or ""
    return [item.strip() for item in value.split(",") if item.strip()]


class Config:
    """Production-safe defaults. Subclasses only change what differs."""

    TESTING = False
    DEBUG = False

    # Data lives in the instance folder unless DATA_DIR says otherwise (Docker
    # mounts /data). The factory fills the None values from it.
    DATA_DIR = env_str("DATA_DIR")
    SECRET_KEY = env_str("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = env_str("DATABASE_URL")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    IMAGE_DIR = env_str("IMAGE_DIR")
    LOG_DIR = env_str("LOG_DIR", str(BASE_DIR / "logs"))
    LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
    REDIS_URL = env_str("REDIS_URL")

    # Serving
    HOST = env_str("HOST", "127.0.0.1")
    PORT = env_int("PORT", 8000)
    THREADS = env_int("THREADS", 0)  # 0: derived from the gate (see wsgi.py)
    TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
    # Gemini's inline request cap is 20 MB; a bigger body could never succeed.
    MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 20 * 1024 * 1024)
    MAX_IMAGE_BYTES = env_int("MAX_IMAGE_BYTES", 10 * 1024 * 1024)
    MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 50_000_000)
    MAX_FORM_PARTS = env_int("MAX_FORM_PARTS", 64)
    # Decoding uploads (app/services/decode_budget.py): pixels of all the
    # uploads of one request, read from their headers (14 photos of 7 MP or
    # two at MAX_IMAGE_PIXELS pass); requests decoding at once, and how many
    # may wait how long for a turn before a 503.
    MAX_REQUEST_PIXELS = env_int("MAX_REQUEST_PIXELS", 100_000_000)
    DECODE_CONCURRENCY = env_int("DECODE_CONCURRENCY", 2)
    DECODE_MAX_QUEUE = env_int("DECODE_MAX_QUEUE", 4)
    DECODE_QUEUE_TIMEOUT_S = env_float("DECODE_QUEUE_TIMEOUT_S", 10)

    # Sessions (Flask-Session). Idle lifetime is how long a session lives
    # without use; absolute lifetime caps it however active it is.
    SESSION_COOKIE_NAME = "nb_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
    SESSION_PERMANENT = True
    SESSION_REFRESH_EACH_REQUEST = False
    SESSION_IDLE_HOURS = env_float("SESSION_IDLE_HOURS", 24 * 7)
    SESSION_ABSOLUTE_DAYS = env_float("SESSION_ABSOLUTE_DAYS", 30)
    PERMANENT_SESSION_LIFETIME = timedelta(hours=SESSION_IDLE_HOURS)

    # CSRF (Flask-WTF): header only; the token lives as long as the session.
    WTF_CSRF_CHECK_DEFAULT = False
    WTF_CSRF_HEADERS = ["X-CSRF-Token"]
    WTF_CSRF_TIME_LIMIT = None
    WTF_CSRF_SSL_STRICT = False

    # Rate limits (Flask-Limiter)
    RATELIMIT_STORAGE_URI = env_str("RATELIMIT_STORAGE_URI", "memory://")
    # Off: Flask-Limiter would overwrite the upstream's own Retry-After on every
    # /v1 response. Our 429 handler sets Retry-After itself.
    RATELIMIT_HEADERS_ENABLED = False
    RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)
    # Redis away for a moment: count in memory rather than fail every request.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    LOGIN_RATE_LIMIT = env_str("LOGIN_RATE_LIMIT", "10/minute;50/hour")
    # Failed logins per username from one address; and per username from all
    # addresses together, a ceiling for guessers that rotate addresses.
    LOGIN_USER_RATE_LIMIT = env_str("LOGIN_USER_RATE_LIMIT", "5/minute;30/hour")
    LOGIN_USER_CEILING = env_str("LOGIN_USER_CEILING", "100/hour;500/day")
    SIGNUP_RATE_LIMIT = env_str("SIGNUP_RATE_LIMIT", "5/minute;20/hour")
    # Attempts at the first-admin setup code, per address.
    SETUP_RATE_LIMIT = env_str("SETUP_RATE_LIMIT", "5/minute;20/hour")
    GENERATION_RATE_LIMIT = env_str("GENERATION_RATE_LIMIT", "30/minute;500/day")

    # Accounts
    ALLOW_SIGNUP = env_bool("ALLOW_SIGNUP", True)
    # open | invite (a code an admin made) | closed; ALLOW_SIGNUP=0 means
    # closed whatever this says (app/services/accounts.py signup_policy()).
    SIGNUP_POLICY = env_str("SIGNUP_POLICY", "open")
    # scrypt at OWASP's minimum (N=2^15, r=8, p=3) — see app/services/accounts.py
    PASSWORD_HASH_METHOD = "scrypt:32768:8:3"
    REQUIRE_AUTH_FOR_GENERATION = env_bool("REQUIRE_AUTH_FOR_GENERATION", False)
    ALLOWED_ORIGINS = env_list("ALLOWED_ORIGINS")

    # GenAI
    GOOGLE_API_KEY = env_str("GOOGLE_API_KEY") or env_str("GEMINI_API_KEY")
    GENAI_PROVIDER = env_str("GENAI_PROVIDER")  # gemini | offline | None (auto)
    DEFAULT_MODEL = env_str("DEFAULT_MODEL")
    GENAI_MODELS = env_list("GENAI_MODELS")
    GENAI_BASE_URL = env_str("GENAI_BASE_URL")
    GENAI_API_VERSION = env_str("GENAI_API_VERSION", "v1beta")
    GENAI_TIMEOUT_S = env_float("GENAI_TIMEOUT_S", 60)
    GENAI_MAX_RETRIES = env_int("GENAI_MAX_RETRIES", 2)
    GENAI_BACKOFF_MS = env_int("GENAI_BACKOFF_MS", 500)
    # Tunnels (ngrok, Cloudflare) cut requests near 100 s; finish before that.
    GENAI_DEADLINE_S = env_float("GENAI_DEADLINE_S", 90)
    GENAI_FORCE_SINGLE_ON_RETRY = env_bool("GENAI_FORCE_SINGLE_ON_RETRY", False)
    GENAI_MAX_CONCURRENT = env_int("GENAI_MAX_CONCURRENT", 2)
    GENAI_MIN_INTERVAL_MS = env_int("GENAI_MIN_INTERVAL_MS", 300)
    GENAI_MAX_QUEUE = env_int("GENAI_MAX_QUEUE", 8)
    GENAI_QUEUE_TIMEOUT_S = env_float("GENAI_QUEUE_TIMEOUT_S", 30)
    GENAI_LEASE_S = env_float("GENAI_LEASE_S", 15)
    HTTPS_PROXY = env_str("HTTPS_PROXY") or env_str("https_proxy")

    # Background jobs (app/services/jobs.py, job_runner.py). Worker threads
    # per process (0: GENAI_MAX_CONCURRENT; -1: this process runs none).
    JOB_WORKERS = env_int("JOB_WORKERS", 0)
    # Unfinished jobs one caller (user or anonymous address) may have, and
    # jobs queued in all before new ones are refused with a 503.
    JOB_MAX_ACTIVE_PER_CALLER = env_int("JOB_MAX_ACTIVE_PER_CALLER", 8)
    JOB_MAX_QUEUED = env_int("JOB_MAX_QUEUED", 200)
    # A running job's worker renews its lease; one not renewed for this long
    # belonged to a process that died, and is recovered (docs/reliability.md).
    JOB_LEASE_S = env_float("JOB_LEASE_S", 30)
    # A job started this many times without finishing fails (a poison job).
    JOB_MAX_RUNS = env_int("JOB_MAX_RUNS", 3)
    # How often workers and event streams look for other processes' changes.
    JOB_POLL_S = env_float("JOB_POLL_S", 0.25)
    # Finished jobs are deleted after this (their images stay in conversations);
    # those made without login after JOB_ANONYMOUS_RETENTION_S.
    JOB_RETENTION_DAYS = env_float("JOB_RETENTION_DAYS", 7)
    JOB_ANONYMOUS_RETENTION_S = env_float("JOB_ANONYMOUS_RETENTION_S", 3600)
    # Event streams (each holds a server thread): open at once per caller and
    # in all; past that the answer is 429/503 and the page polls instead.
    JOB_STREAMS_PER_CALLER = env_int("JOB_STREAMS_PER_CALLER", 8)
    JOB_STREAMS_MAX = env_int("JOB_STREAMS_MAX", 256)
    JOB_STREAM_HEARTBEAT_S = env_float("JOB_STREAM_HEARTBEAT_S", 15)
    # A stream is closed after this; EventSource reconnects with Last-Event-ID.
    JOB_STREAM_MAX_S = env_float("JOB_STREAM_MAX_S", 600)

    # Spend control (app/services/quota.py, pricing.py). Unset: unlimited.
    # Per-user limits are defaults an admin can override per user.
    QUOTA_DAILY_IMAGES = env_str("QUOTA_DAILY_IMAGES")
    QUOTA_MONTHLY_IMAGES = env_str("QUOTA_MONTHLY_IMAGES")
    QUOTA_MONTHLY_USD = env_str("QUOTA_MONTHLY_USD")
    # Shared by anonymous callers from one address, per day.
    ANON_DAILY_IMAGES = env_str("ANON_DAILY_IMAGES")
    # Install-wide, estimated: every generation stops once it is reached.
    BUDGET_MONTHLY_USD = env_str("BUDGET_MONTHLY_USD")
    # Days and months end at midnight here (an IANA name).
    QUOTA_TIMEZONE = env_str("QUOTA_TIMEZONE", "UTC")
    # JSON merged over the default prices, per model (see app/services/pricing.py).
    PRICE_TABLE = env_str("PRICE_TABLE")

    SQLALCHEMY_TRACK_MODIFICATIONS = False


class DevelopmentConfig(Config):
    DEBUG = False  # waitress serves `make run`; the debugger would be a remote shell


class ProductionConfig(Config):
    pass


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production"
    SQLALCHEMY_DATABASE_URI = env_str("TEST_DATABASE_URL")
    RATELIMIT_STORAGE_URI = "memory://"
    REDIS_URL = None
    GOOGLE_API_KEY = None
    GENAI_PROVIDER = "offline"
    GENAI_MIN_INTERVAL_MS = 0
    GENAI_MAX_RETRIES = 2
    GENAI_BACKOFF_MS = 10
    # Fast hashes keep the suite quick; production keeps OWASP's parameters.
    PASSWORD_HASH_METHOD = "scrypt:1024:8:1"
    LOG_DIR = None


CONFIGS = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestingConfig,
}
