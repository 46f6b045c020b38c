"""Settings for IR Portal, read from the environment.

With nothing set, the app runs on an embedded default: SQLite and a file-system broker
under `var/`. Setting `DATABASE_URL` and `REDIS_URL` moves the same code onto PostgreSQL
and Redis. README.md lists every variable.
"""

import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
VAR_DIR = Path(env.str("IRPORTAL_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)


def _secret_key() -> str:
    """The configured key; in DEBUG, one generated once and kept under var/."""
    if key := env.str("SECRET_KEY", default=""):
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "irportal",
    "cases",
    "playbooks",
    "evidence",
    "findings",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "irportal.urls"
WSGI_APPLICATION = "irportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'irportal.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write to one file: take the write lock when a
    # transaction begins (no upgrade deadlocks) and wait for it rather than fail.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # Short queries only lose to JIT compilation, which PostgreSQL starts on cost estimates
    # alone: it cost a visibility-filtered count 120 ms of compiling for 20 ms of work.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
    # Parameters go to the server apart from the SQL, and psycopg prepares a statement once
    # it has run a few times on a connection: PostgreSQL stops parsing and planning the
    # same few INSERTs and the app stops quoting values into SQL (an API create: 278 -> 331
    # a second at 4 clients, bench/api.py). Turn it off behind a pooler in transaction mode
    # that does not keep prepared statements (PgBouncer before 1.21).
    DATABASES["default"]["OPTIONS"]["server_side_binding"] = env.bool(
        "DATABASE_SERVER_SIDE_BINDING", default=True
    )
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "incident-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)

REDIS_URL = env.str("REDIS_URL", default="")

# Only roles are cached (irportal.roles); Redis where it runs, so every process forgets a
# changed membership at once.
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "irportal",
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# A batch of 500 detector events of 5 to 20 KB each must fit in one request.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=16 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "irportal.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "irportal.api.PageNumberPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "irportal.api.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "irportal.api.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
REST_KNOX = {
    # Tokens are stored hashed. They last until revoked unless issued with an expiry
    # (`issue_token --days N`): integrations need long-lived ones.
    "TOKEN_TTL": None,
    "AUTH_HEADER_PREFIX": "Token",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "IR Portal API",
    "DESCRIPTION": "Incidents, their response and their timeline.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "IncidentStatusEnum": "cases.choices.Status",
        "ObjectiveStatusEnum": "cases.choices.ObjectiveStatus",
        "CommunicationStatusEnum": "cases.choices.CommunicationStatus",
        "IncidentSeverityEnum": "cases.choices.Severity",
        "CategoryEnum": "cases.choices.Category",
        "FindingSeverityEnum": "findings.choices.FindingSeverity",
        "FindingDecisionEnum": "findings.choices.Decision",
        "HandDecisionEnum": "findings.choices.HAND_DECISIONS",
        "PlaybookRunStatusEnum": "playbooks.choices.RunStatus",
        "RunStepStateEnum": "playbooks.choices.StepState",
        "ActionRunStateEnum": "playbooks.choices.ActionState",
    },
    # Swagger UI served from the installed package, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery: Redis where REDIS_URL is set, otherwise kombu's file-system transport, which
# needs no server and keeps queued messages on disk across restarts.
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
else:
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# How long an incident may wait for a responder to acknowledge it, by severity.
ACKNOWLEDGEMENT_DEADLINES = {
    "sev1": timedelta(minutes=env.int("ACK_DEADLINE_SEV1_MINUTES", default=15)),
    "sev2": timedelta(minutes=env.int("ACK_DEADLINE_SEV2_MINUTES", default=60)),
    "sev3": timedelta(minutes=env.int("ACK_DEADLINE_SEV3_MINUTES", default=4 * 60)),
    "sev4": timedelta(minutes=env.int("ACK_DEADLINE_SEV4_MINUTES", default=24 * 60)),
}

# A new finding joins an open incident about the same resource and of the same category
# when that incident saw activity within this window.
FINDING_GROUPING_WINDOW = timedelta(hours=env.int("FINDING_GROUPING_WINDOW_HOURS", default=24))

# The SQS queue an EventBridge rule feeds with findings; unset: no queue is polled.
FINDINGS_QUEUE_URL = env.str("FINDINGS_QUEUE_URL", default="")

# Every AWS client is pointed here when set: the simulated account in tests and make run.
AWS_ENDPOINT_URL = env.str("AWS_ENDPOINT_URL", default="")
AWS_DEFAULT_REGION = env.str("AWS_DEFAULT_REGION", default="us-east-1")

if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # Messages carry their own key=value pairs; this adds when, how bad and where.
        "logfmt": {"format": "time=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "logfmt"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
    },
}

# The response engine (playbooks). A worker that takes an action holds it for the lease;
# past that, the reconciler hands it to another worker (the first one died, or hangs: the
# task's hard time limit is a little shorter than the lease). A queued action whose task no
# worker took within PLAYBOOK_REDISPATCH_AFTER seconds is sent again (the broker lost it).
PLAYBOOK_ACTION_LEASE = env.int("PLAYBOOK_ACTION_LEASE", default=300)
PLAYBOOK_REDISPATCH_AFTER = env.int("PLAYBOOK_REDISPATCH_AFTER", default=60)
PLAYBOOK_MAX_ATTEMPTS = env.int("PLAYBOOK_MAX_ATTEMPTS", default=5)
# Extra modules whose import registers actions (the test suite's own, for instance).
PLAYBOOK_ACTION_MODULES: list[str] = env.list("PLAYBOOK_ACTION_MODULES", default=[])

# Evidence (the evidence app). Retention classes are days; an item's class defaults to the
# longest that its incident's severity or category calls for.
EVIDENCE_RETENTION_CLASSES: dict[str, int] = {
    name: int(days)
    for name, days in env.dict(
        "EVIDENCE_RETENTION_CLASSES", default={"short": "90", "standard": "365", "long": "2555"}
    ).items()
}
EVIDENCE_RETENTION_DEFAULT = env.str("EVIDENCE_RETENTION_DEFAULT", default="standard")
EVIDENCE_RETENTION_BY_SEVERITY = env.dict(
    "EVIDENCE_RETENTION_BY_SEVERITY", default={"sev1": "long", "sev2": "long"}
)
EVIDENCE_RETENTION_BY_CATEGORY = env.dict(
    "EVIDENCE_RETENTION_BY_CATEGORY",
    default={"data_exposure": "long", "compromised_credentials": "long"},
)
# Unset: the local store under var/. Set: that bucket (versioning and Object Lock on) in
# the central security account.
EVIDENCE_BUCKET = env.str("EVIDENCE_BUCKET", default="")
EVIDENCE_BUCKET_REGION = env.str("EVIDENCE_BUCKET_REGION", default="")
EVIDENCE_OBJECT_LOCK_MODE = env.str("EVIDENCE_OBJECT_LOCK_MODE", default="GOVERNANCE")
EVIDENCE_LOCAL_DIR = Path(env.str("EVIDENCE_LOCAL_DIR", default=str(VAR_DIR / "evidence")))
EVIDENCE_KMS_KEY_ID = env.str("EVIDENCE_KMS_KEY_ID", default="")
EVIDENCE_DOWNLOAD_LINK_SECONDS = env.int("EVIDENCE_DOWNLOAD_LINK_SECONDS", default=300)
# The Ed25519 key manifests are signed with (PEM, PKCS#8). Generated under var/ when DEBUG
# is on and none is given.
EVIDENCE_SIGNING_KEY_FILE = env.str(
    "EVIDENCE_SIGNING_KEY_FILE", default=str(VAR_DIR / "evidence_signing_key.pem")
)
