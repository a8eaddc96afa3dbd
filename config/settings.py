"""Settings of the course platform, read from environment variables only.

With nothing set it runs on the embedded default: SQLite and a SQLite-backed Celery broker under ``var/``,
private files in ``var/private``, the bubblewrap sandbox and the CPU.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from config.private_files import create_private_file, sqlite_path
from grader.registry import get_lab, lab_names

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and not env_bool("ALLOW_INSECURE_SECRET", False):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-never-used-in-production"  # noqa: S105
# Fernet keys that encrypt the LMS tool keys stored in the database, newest first (older ones still decrypt, for a
# rotation). Without one, development derives a key from SECRET_KEY; production refuses to start.
LMS_KEY_ENCRYPTION_KEYS = env_list("LMS_KEY_ENCRYPTION_KEYS")
if not LMS_KEY_ENCRYPTION_KEYS and not DEBUG and not env_bool("ALLOW_INSECURE_SECRET", False):
    raise ImproperlyConfigured(
        "LMS_KEY_ENCRYPTION_KEYS must be set when DEBUG is off (make one with: python -c "
        '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())").'
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "courses.adminsite.OperatorAdminConfig",  # the admin, for superusers only
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "courses",
    "labs",
    "projects",
    "prizes",
    "lms",
    # Last: the demo course may import every app above, and none of them imports it.
    "demo",
]

MIDDLEWARE = [
    "courses.middleware.ArrivalStampMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Above the session, CSP and X-Frame-Options middleware: pages opened from an LMS adjust what those set.
    "lms.middleware.EmbeddedInLmsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "courses.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# Sign-in: django-axes checks every authentication (the site's and the admin's) before the password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "courses.backends.PasswordBackend",
    "courses.backends.InstitutionBackend",
    # Reloads the account of a session begun by an LTI launch (lms/launch.py); it checks no credentials.
    "lms.backends.LaunchBackend",
]
# Institution sign-in over OpenID Connect (courses/institution.py): off unless an issuer and a client are set. The
# provider's endpoints come from the issuer's discovery document; people are known by the issuer and their ``sub``.
OIDC_ISSUER = os.environ.get("OIDC_ISSUER", "")
OIDC_RP_CLIENT_ID = os.environ.get("OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = os.environ.get("OIDC_CLIENT_SECRET", "")
OIDC_RP_SCOPES = os.environ.get("OIDC_SCOPES", "openid email profile")
OIDC_RP_SIGN_ALGO = os.environ.get("OIDC_SIGN_ALGO", "RS256")
INSTITUTION_NAME = os.environ.get("INSTITUTION_NAME", "")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
OIDC_AUTHENTICATION_CALLBACK_URL = "institution_callback"
# Off: students sign in only with their institution account; judges from industry and staff keep passwords.
LOCAL_PASSWORDS_FOR_STUDENTS = env_bool("LOCAL_PASSWORDS_FOR_STUDENTS", True)
# Failed passwords lock a (username, address) pair only: nobody can lock a student out from elsewhere, and a
# campus behind one NAT is not locked out by one of its members (courses/ratelimit.py adds the per-address ceiling).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = int(os.environ.get("SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS", "10"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("SIGN_IN_LOCKOUT_MINUTES", "15")))
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "courses.ratelimit.client_address"
AXES_USERNAME_CALLABLE = "courses.ratelimit.sign_in_username"
AXES_LOCKOUT_CALLABLE = "courses.ratelimit.locked_out"
AXES_WHITELIST_CALLABLE = "courses.institution.is_institution_callback"
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False
# The reverse proxies whose X-Forwarded-For is believed (addresses or networks); none by default.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
SIGN_IN_ADDRESS_CEILING = (int(os.environ.get("SIGN_IN_FAILURES_PER_ADDRESS", "200")), 300)
# Uploads per student per minute, web form and token API together.
UPLOAD_RATE_LIMIT = (int(os.environ.get("UPLOADS_PER_MINUTE", "30")), 60)

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "courses.context_processors.navigation",
                "courses.context_processors.institution_sign_in",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default serves a web process and a worker at once: wait for the write lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # Created 0600 before any connection does (SQLite would make it 0644); its WAL files take the same mode.
    if _database_file := sqlite_path(str(DATABASES["default"]["NAME"])):
        create_private_file(_database_file)
    # The leaderboard's covering index (labs.Evaluation) is a plain index on SQLite, which has no INCLUDE columns:
    # the embedded default's boards are small, and the warning would say nothing its operator could act on.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_RESET_TIMEOUT = 7 * 24 * 3600

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Of node_modules, only the files the pages use, under vendor/ (config/vendor_files.py lists them).
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "config.vendor_files.VendorFinder",
]

# Uploads never sit whole in memory: anything over 2.5 MB streams to a temporary file.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# Private storage: every upload (artifacts, slides, reviews) is served only through permission-checked views.
PRIVATE_STORAGE_S3_BUCKET = os.environ.get("PRIVATE_STORAGE_S3_BUCKET", "")
if PRIVATE_STORAGE_S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": PRIVATE_STORAGE_S3_BUCKET,
            "endpoint_url": os.environ.get("PRIVATE_STORAGE_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("PRIVATE_STORAGE_S3_REGION") or None,
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
            # An object opened for reading (a dataset archive, an artifact) is downloaded whole before it is read;
            # django-storages keeps it in memory unless told where to spill, and a grading node must not hold a
            # dataset of gigabytes in RAM. Past this size it spills to FILE_UPLOAD_TEMP_DIR.
            "max_memory_size": FILE_UPLOAD_MAX_MEMORY_SIZE,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(VAR_DIR / "private"), "base_url": None},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG and env_bool("STATIC_COMPRESS", False)
        else "django.contrib.staticfiles.storage.StaticFilesStorage",
        # Public files keep public modes; the private ones below (FILE_UPLOAD_*) are for what people upload.
        "OPTIONS": {"file_permissions_mode": 0o644, "directory_permissions_mode": 0o755},
    },
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = VAR_DIR / "private"
# Private files are the service user's alone, whatever the umask (``./dev setup`` repairs older ones).
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
FILE_UPLOAD_TEMP_DIR = os.environ.get("FILE_UPLOAD_TEMP_DIR") or None

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "course-platform@localhost")
if os.environ.get("EMAIL_HOST"):
    EMAIL_HOST = os.environ["EMAIL_HOST"]
    EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if os.environ.get("CACHE_URL", "").startswith("redis://"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["CACHE_URL"],
        }
    }

# Security: secure by default; the embedded demo over plain HTTP switches the HTTPS-only settings off.
SECURE_HTTPS = env_bool("SECURE_HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_SSL_REDIRECT = SECURE_HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000" if SECURE_HTTPS else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HTTPS
SECURE_HSTS_PRELOAD = SECURE_HTTPS
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; media-src 'self' blob: data:; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)

# Celery: the database is the source of truth; messages only say "look at evaluation N".
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", f"sqla+sqlite:///{VAR_DIR / 'broker.sqlite3'}")
if CELERY_BROKER_URL.startswith("sqla+sqlite:///") and (_broker_file := sqlite_path(CELERY_BROKER_URL)):
    create_private_file(_broker_file)  # the embedded broker's queue, 0600 like the database
# Each lab's queue, as the grader's lab class declares it.
GRADING_QUEUES = {name: get_lab(name).queue for name in lab_names()}
EVALUATION_MAX_SECONDS = int(os.environ.get("EVALUATION_MAX_SECONDS", "1800"))
# One queue per lab, so that minutes-long LLM jobs never sit in front of seconds-long music jobs.
CELERY_TASK_QUEUES = [Queue(name) for name in ["default", *GRADING_QUEUES.values()]]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message reserved per worker process: a job waits in the queue, where any free worker can take it. The embedded
# broker is polled, so there each process reserves its next job too and starts it the moment one ends instead of at
# the next poll (a single worker on one machine: no other worker it could have gone to).
CELERY_WORKER_PREFETCH_MULTIPLIER = 2 if CELERY_BROKER_URL.startswith("sqla+") else 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = EVALUATION_MAX_SECONDS + 300
CELERY_TASK_SOFT_TIME_LIMIT = EVALUATION_MAX_SECONDS + 240
# An unacknowledged message is redelivered after this: longer than the longest evaluation.
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": 2 * EVALUATION_MAX_SECONDS + 600}
    if CELERY_BROKER_URL.startswith(("redis", "rediss"))
    else {}
)
# The embedded broker is a table the worker polls: every 0.1 s rather than kombu's 1 s, which would leave a worker
# idle up to a second between evaluations that take a fraction of one (a cheap query on one machine).
EMBEDDED_BROKER_POLL_SECONDS = float(os.environ.get("EMBEDDED_BROKER_POLL_SECONDS", "0.1"))
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
EVALUATION_LEASE_SECONDS = int(os.environ.get("EVALUATION_LEASE_SECONDS", "120"))
EVALUATION_MAX_ATTEMPTS = int(os.environ.get("EVALUATION_MAX_ATTEMPTS", "3"))
# Grades to the LMS: a sync the LMS refused in part (or did not answer) runs again this often, this many times.
LMS_GRADE_SYNC_RETRIES = int(os.environ.get("LMS_GRADE_SYNC_RETRIES", "6"))
LMS_GRADE_SYNC_RETRY_SECONDS = int(os.environ.get("LMS_GRADE_SYNC_RETRY_SECONDS", "600"))
# Completions that change by themselves (an evaluation finishing after a release) wait this long for one sync per course.
LMS_GRADE_SYNC_COALESCE_SECONDS = int(os.environ.get("LMS_GRADE_SYNC_COALESCE_SECONDS", "120"))
REAPER_INTERVAL_SECONDS = int(os.environ.get("REAPER_INTERVAL_SECONDS", "30"))
QUEUED_RESEND_AFTER_SECONDS = int(os.environ.get("QUEUED_RESEND_AFTER_SECONDS", "300"))
CELERY_BEAT_SCHEDULE = {
    "reap-evaluations": {"task": "worker.tasks.reap", "schedule": float(REAPER_INTERVAL_SECONDS)},
    "remind-deadlines": {"task": "worker.tasks.remind_deadlines", "schedule": 3600.0},
}

# Grading: where the worker keeps its node-local copies, and how it sandboxes the grader.
SANDBOX_BACKEND = os.environ.get("SANDBOX_BACKEND", "bubblewrap")
# Each worker process keeps a sandbox started for each lab it serves, its imports done and its dataset verified, so
# a job of any lab pays no interpreter start; each box still serves exactly one job and is replaced after it.
SANDBOX_PREWARM = env_bool("SANDBOX_PREWARM", True)
# At most this many idle boxes per worker process (one per lab it serves: three covers the course's labs) ...
SANDBOX_WARM_BOXES = int(os.environ.get("SANDBOX_WARM_BOXES", "3"))
# ... holding at most this much memory together (MB, measured from each box's cgroup once it is ready).
SANDBOX_WARM_MEMORY_MB = int(os.environ.get("SANDBOX_WARM_MEMORY_MB", "3072"))
SANDBOX_STARTUP_SECONDS = int(os.environ.get("SANDBOX_STARTUP_SECONDS", "300"))
# The bubblewrap backend forks each box from a warm server of its lab (the imports paid once per process, not once
# per job); at most this many servers per worker process, each one lab configuration's. 0: every box from nothing.
SANDBOX_FORK_SERVERS = int(os.environ.get("SANDBOX_FORK_SERVERS", "3"))
SANDBOX_DOCKER_IMAGE = os.environ.get("SANDBOX_DOCKER_IMAGE", "course-platform-grader:latest")
SANDBOX_DOCKER_URL = os.environ.get("SANDBOX_DOCKER_URL", "unix:///var/run/docker.sock")
# A seccomp profile for the grader's containers (platform/seccomp-grader.json); empty: the engine's default.
SANDBOX_DOCKER_SECCOMP = os.environ.get("SANDBOX_DOCKER_SECCOMP", "")
# The dedicated unprivileged account every box runs as (created by `python -m worker.sandbox.setup`).
SANDBOX_USER = os.environ.get("SANDBOX_USER", "grader-sandbox")
# Where the bubblewrap backend mounts each run's view of the host (root-owned, traversable by the box's group only).
SANDBOX_STAGING_DIR = Path(os.environ.get("SANDBOX_STAGING_DIR", "/run/grader-sandbox"))
# The CPU quota of one box, in CPUs (a cgroup quota, not a hint).
SANDBOX_CPUS = float(os.environ.get("SANDBOX_CPUS", "2"))
# A node is healthy for time accounting when its sandbox probe passed and the reference workload timed at worker
# start took at most this long; only then is a confirmed timeout of an unbounded-cost artifact the student's.
SANDBOX_HEALTH_BUDGET_SECONDS = float(os.environ.get("SANDBOX_HEALTH_BUDGET_SECONDS", "10"))
GRADER_DEVICE = os.environ.get("GRADER_DEVICE", "cpu")
GRADER_GPU_ID = os.environ.get("GRADER_GPU_ID", "0")
WORKER_CACHE_DIR = Path(os.environ.get("WORKER_CACHE_DIR", VAR_DIR / "worker-cache"))
DATASETS_DIR = Path(os.environ.get("DATASETS_DIR", VAR_DIR / "datasets"))
BASE_MODELS_DIR = Path(os.environ.get("BASE_MODELS_DIR", DATASETS_DIR / "base-models"))
UPLOAD_BODY_SECONDS = int(os.environ.get("UPLOAD_BODY_SECONDS", "600"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-axes logs every failed sign-in at INFO; lockouts (WARNING) are what the staff need to see.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
