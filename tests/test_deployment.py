"""The production stack as described in compose.yaml and platform/: its wiring, its confinement, its settings."""

import os
import re
import secrets
import string
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.urls import resolve

REPO = Path(__file__).resolve().parents[1]
PLATFORM = REPO / "platform"
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
APP_IMAGE = COMPOSE["x-app"]["image"]
APP_SERVICES = sorted(name for name, s in SERVICES.items() if s.get("image") == APP_IMAGE)
WORKERS = ("worker-cpu", "worker-gpu")


def command_of(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def queues_of(service: str) -> set[str]:
    command = command_of(service)
    return set(command[command.index("-Q") + 1].split(","))


def volumes_of(service: str) -> list[str]:
    return [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in SERVICES[service].get("volumes", [])]  # fmt: skip


def dockerfile_users(path: Path) -> list[str]:
    return re.findall(r"^USER\s+(\S+)", path.read_text(), flags=re.MULTILINE)


def requirement_lines() -> list[str]:
    text = (PLATFORM / "grader-requirements.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_compose_describes_every_production_service():
    assert {"postgres", "redis", "minio", "migrate", "web", "beat", "worker-cpu", "worker-gpu"} <= set(SERVICES)
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    assert SERVICES["redis"]["image"].startswith("redis:7")
    assert APP_SERVICES == ["beat", "migrate", "web", "worker-cpu", "worker-gpu"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_app_service_reaches_the_database_and_the_broker_by_service_name(service):
    env = SERVICES[service]["environment"]
    assert re.fullmatch(r"postgres://[^@]+@postgres:5432/\S+", env["DATABASE_URL"])
    assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # Compose refuses to start without it
    assert env["DEBUG"] == "0"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_wait_for_a_healthy_database_and_broker_and_for_migrations(service):
    depends = SERVICES[service]["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    if service != "migrate":
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    for dependency in ("postgres", "redis"):
        assert SERVICES[dependency]["healthcheck"]["test"]


def test_the_one_shot_migrate_service_migrates_and_is_not_restarted():
    assert command_of("migrate") == ["python", "manage.py", "migrate", "--noinput"]
    assert SERVICES["migrate"]["restart"] == "no"


def test_postgres_checks_readiness_and_keeps_its_data_in_a_volume():
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert "postgres-data:/var/lib/postgresql/data" in volumes_of("postgres")
    assert "postgres-data" in COMPOSE["volumes"]


def test_redis_keeps_an_append_only_file_so_queued_messages_survive_a_restart():
    command = command_of("redis")
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "redis-data:/data" in volumes_of("redis")


def test_web_runs_gunicorn_with_threads_and_a_healthcheck_on_a_real_page():
    command = command_of("web")
    assert command[:2] == ["gunicorn", "config.wsgi:application"]
    options = dict(part.lstrip("-").split("=", 1) for part in command[2:] if "=" in part)
    assert {"workers", "threads", "timeout", "bind"} <= set(options)
    assert int(options["timeout"]) >= 30
    probe = " ".join(SERVICES["web"]["healthcheck"]["test"])
    path = re.search(r"'GET', '([^']+)'", probe).group(1)
    assert resolve(path).url_name == "login"
    assert "X-Forwarded-Proto" in probe  # otherwise the HTTPS redirect answers instead of the page


def test_beat_runs_once_with_the_celery_app_of_the_settings():
    assert command_of("beat")[:4] == ["celery", "-A", "config", "beat"]


def test_cpu_worker_takes_the_default_music_and_vision_queues_one_message_at_a_time():
    command = command_of("worker-cpu")
    assert command[:4] == ["celery", "-A", "config", "worker"]
    assert queues_of("worker-cpu") == {"default", "grading-music", "grading-vision"}
    assert "--prefetch-multiplier=1" in command
    assert SERVICES["worker-cpu"]["environment"]["GRADER_DEVICE"] == "cpu"


def test_gpu_worker_reserves_a_gpu_and_grades_the_llm_queue_in_the_docker_sandbox():
    service = SERVICES["worker-gpu"]
    assert queues_of("worker-gpu") == {"grading-llm", "grading-vision"}
    assert "--prefetch-multiplier=1" in command_of("worker-gpu")
    assert service["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    env = service["environment"]
    assert env["GRADER_DEVICE"] == "cuda"
    assert env["SANDBOX_BACKEND"] == "docker"
    assert env["SANDBOX_DOCKER_IMAGE"] == SERVICES["grader"]["image"]


def test_every_queue_of_the_settings_has_a_worker():
    consumed = set().union(*(queues_of(w) for w in WORKERS))
    assert {queue.name for queue in settings.CELERY_TASK_QUEUES} == consumed


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_only_the_workers_mount_the_docker_socket(service):
    mounts_socket = any("docker.sock" in volume for volume in volumes_of(service))
    assert mounts_socket == (service in WORKERS)


@pytest.mark.parametrize("worker", WORKERS)
def test_workers_share_their_job_folders_with_the_engine_at_the_same_path(worker):
    env = SERVICES[worker]["environment"]
    assert env["SANDBOX_BACKEND"] == "docker"
    assert f"{env['WORKER_CACHE_DIR']}:{env['WORKER_CACHE_DIR']}" in volumes_of(worker)
    if "BASE_MODELS_DIR" in env:
        assert f"{env['BASE_MODELS_DIR']}:{env['BASE_MODELS_DIR']}:ro" in volumes_of(worker)


def test_the_grader_image_runs_as_the_sandbox_user_offline_and_without_django():
    dockerfile = PLATFORM / "grader.Dockerfile"
    assert dockerfile_users(dockerfile)[-1] == "10002:10002"
    # The worker image knows the same account with the same uid: it starts the containers as that user.
    assert "--uid 10002 --user-group" in (PLATFORM / "web.Dockerfile").read_text()
    assert "HF_HUB_OFFLINE=1" in dockerfile.read_text()
    assert "manage.py" not in dockerfile.read_text()
    names = {re.split(r"[<>=\[ ]", line)[0] for line in requirement_lines()}
    assert names.isdisjoint({"django", "celery", "psycopg", "redis", "gunicorn", "django-storages", "boto3"})


def test_the_app_image_runs_as_a_non_root_user():
    users = dockerfile_users(PLATFORM / "web.Dockerfile")
    assert users and users[-1] not in {"root", "0", "0:0"}


def test_grader_requirements_are_the_ranges_of_pyproject():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = requirement_lines()
    assert lines and set(lines) <= set(declared)


def test_grader_requirements_cover_what_the_sandboxed_grader_imports():
    provided = {"numpy", "safetensors", "jsonschema", "music21", "fairlearn", "sklearn", "skimage", "PIL",
                "transformers", "peft", "tokenizers", "onnx", "onnxruntime", "torch", "grader", "regex",
                "spellchecker"}  # fmt: skip
    # h5py serves only `convert-keras`, which students run on their own machines.
    local_only = {"keras_convert.py"}
    imported = set()
    for path in (REPO / "grader").rglob("*.py"):
        if path.name in local_only:
            continue
        imported |= set(re.findall(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", path.read_text(), flags=re.MULTILINE))
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "__future__"}
    assert third_party <= provided


def test_env_example_lists_every_variable_the_settings_read():
    source = (REPO / "config" / "settings.py").read_text()
    read = set(re.findall(r"""(?:environ\.get|environ\[|env_bool|env_list)\(?\s*["']([A-Z0-9_]+)["']""", source))
    listed = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (PLATFORM / "env.example").read_text(), flags=re.MULTILINE))
    assert "SECRET_KEY" in read
    assert read - listed == set()


def test_images_never_receive_local_secrets_or_state():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".env", ".venv", "var", "node_modules", ".git"} <= ignored


def test_platform_folder_is_not_a_package_and_never_shadows_the_standard_library():
    assert not (PLATFORM / "__init__.py").exists()
    probe = "import platform, sys; platform.system(); print(platform.__file__)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert not Path(result.stdout.strip()).is_relative_to(REPO)


@pytest.mark.slow
def test_deploy_check_is_clean_with_production_settings(tmp_path):
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECURE_", "DATABASE_", "CELERY_", "PRIVATE_STORAGE_", "EMAIL_"))
        and key not in {"DEBUG", "ALLOW_INSECURE_SECRET", "ALLOWED_HOSTS", "BEHIND_TLS_PROXY"}
    }
    env.update(
        DEBUG="0",
        SECRET_KEY="".join(secrets.choice(alphabet) for _ in range(50)),
        LMS_KEY_ENCRYPTION_KEYS="6uhHPmavvLdVeDCt4Il3NwbT6oV6t3TXhYoEzkvc8jY=",
        ALLOWED_HOSTS="example.org",
        SECURE_HTTPS="1",
        VAR_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
