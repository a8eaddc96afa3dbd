# syntax=docker/dockerfile:1
# The application image: the web server, Celery beat and the Celery workers all run it. The workers grade through
# the Docker sandbox (SANDBOX_BACKEND=docker), so bubblewrap is not installed here.
#
#   docker build -f platform/web.Dockerfile -t course-platform-web .

# Front-end libraries (abcjs, axe-core) are served by the site itself, never from a CDN.
FROM node:20-slim AS static
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim
# The app needs no GPU: the CPU build of the pinned torch keeps the image small (a "+cpu" wheel satisfies the pin).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/app/var \
    STATIC_COMPRESS=1

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && useradd --system --uid 10002 --user-group --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin grader-sandbox

WORKDIR /app
# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml ./
RUN pip install --extra-index-url "${TORCH_INDEX_URL}" .

# The code: everything .dockerignore lets through (no tests, local state, secrets or virtualenv).
COPY . .
COPY --from=static /build/node_modules ./node_modules

# collectstatic needs settings but no secret worth keeping: this key exists only during the build.
RUN ALLOW_INSECURE_SECRET=1 SECURE_HTTPS=0 python manage.py collectstatic --noinput \
    && mkdir -p /app/var/private /app/var/worker-cache \
    && chown -R app:app /app/var

USER app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind=0.0.0.0:8000", "--workers=3", "--threads=8"]
