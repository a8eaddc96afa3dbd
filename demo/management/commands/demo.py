"""Set up and run the whole demo course on the embedded default: data, reference models, people, graded
submissions through the API, projects, judging and prizes; then keep the site running."""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from demo import course as demo_course
from demo import guard
from demo.judging import seed_judging
from demo.projects import seed_projects
from demo.uploads import FileUpload, post_artifact
from grader.labs.llm import tiny_base_dir
from grader.labs.llm.base import DEFAULT_FAMILY, FAMILIES
from labs.intake import collect
from labs.management.commands.register_dataset import register_dataset
from labs.models import ACTIVE_STATES, Evaluation
from labs.selectors import leaderboard_columns, leaderboard_for
from labs.services import create_token, submit_baseline

STUDENT_VARIANTS = {
    # lab kind: [(student e-mail, reference variant, description)]
    "music": [
        ("ada@demo.edu", "reference", "The lab's LSTM, 500 training steps."),
        ("alan@demo.edu", "short", "Same LSTM, trained for only 150 steps."),
        ("grace@demo.edu", "untrained", "Forgot to train: random weights."),
    ],
    "vision": [
        ("ada@demo.edu", "balanced", "Trained on all four groups."),
        ("alan@demo.edu", "standard", "The standard classifier, trained on lighter faces only."),
    ],
    "llm": [("ada@demo.edu", "reference", "LoRA r=8 on q_proj and v_proj.")],
}
BASELINES = {
    "music": [("reference", "Reference LSTM")],
    "vision": [("standard", "Reference standard classifier"), ("balanced", "Reference balanced classifier")],
    "llm": [("reference", "Reference adapter")],
}
TRAIN_OPTIONS = {("music", "short"): ["--variant", "reference", "--option", "steps=150"]}


class Step:
    """A progress line for a long step: what, then how long it took."""

    def __init__(self, out, title: str):
        self.out, self.title = out, title

    def __enter__(self):
        self.started = time.monotonic()
        self.out.write(f"  … {self.title}")
        self.out.flush()
        return self

    def __exit__(self, kind, *_):
        took = time.monotonic() - self.started
        mark = "✗" if kind else "✓"
        self.out.write(f"\r  {mark} {self.title} ({took:.0f} s)\n")
        self.out.flush()


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-serve", action="store_true", help="stop once everything is graded")
        parser.add_argument("--timeout", type=int, default=1800, help="seconds to wait for grading")
        parser.add_argument(
            "--lab3-base",
            choices=sorted(FAMILIES),
            default=DEFAULT_FAMILY,
            help="the family of Lab 3's tiny base model: gemma2 (the 2025 edition's Gemma-2-2B-it, the default), "
            "lfm2 (the 2026 notebook's LFM2-1.2B) or qwen3",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="seed even a database that holds other courses or users (its staff get the public password)",
        )

    def handle(self, *args, port: int, no_serve: bool, timeout: int, force: bool = False, **options):
        self.family = options.get("lab3_base") or DEFAULT_FAMILY
        if not force and (found := guard.foreign_data()):
            raise CommandError(guard.refusal(found))
        self.out = self.stdout._out
        self.processes: list[subprocess.Popen] = []
        var = Path(settings.VAR_DIR)
        var.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.base_url = f"http://127.0.0.1:{port}"
        # A SIGTERM stops the demo like Ctrl-C does: its web server and worker are stopped with it.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            self.run(var, port, no_serve, timeout)
        finally:
            for process in self.processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in self.processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()

    # -- the steps

    def run(self, var: Path, port: int, no_serve: bool, timeout: int):
        self.out.write("The course platform demo (embedded default: SQLite, a serverless broker, bubblewrap, CPU)\n")
        with Step(self.out, "database"):
            call_command("migrate", verbosity=0)
        datasets_dir = Path(settings.DATASETS_DIR)
        with Step(self.out, "course data and demo hidden sets (the course's public data)"):
            self.prepare_data(datasets_dir)
        references = var / "references"
        self.train_references(datasets_dir, references)
        datasets = {}
        for kind in ("music", "vision", "llm"):
            if (datasets_dir / kind / "manifest.json").is_file():
                datasets[kind] = register_dataset(datasets_dir / kind)
        seeded = demo_course.seed_course()
        course = seeded.course
        labs = demo_course.create_labs(course, datasets)
        llm_lab = next((lab for lab in labs if lab.kind == "llm" and lab.dataset is not None), None)
        changed = llm_lab is not None and demo_course.use_base_model(
            llm_lab,
            tiny_base_dir(datasets_dir / "llm", self.family),
            actor=demo_course.member(course, "ta@demo.edu").user,
        )
        self.out.write(f"  ✓ course {course.name} with {course.memberships.count()} people and {len(labs)} labs\n")
        self.start_worker(var)
        self.start_web(port)
        if seeded.created or not course.labs.filter(submissions__isnull=False).exists():
            self.submit_everything(course, labs, references)
        elif changed:
            self.submit_everything(course, [llm_lab], references)  # graded anew on the base model now registered
        self.projects(course, seeded.created)
        self.wait_for_grading(course, timeout)
        self.judging(course)
        self.summary(course, labs)
        if no_serve:
            return
        self.out.write("\nThe site keeps running; press Ctrl-C to stop it.\n")
        try:
            while all(p.poll() is None for p in self.processes):
                time.sleep(1)
        except KeyboardInterrupt:
            self.out.write("\nStopping.\n")

    def prepare_data(self, datasets_dir: Path):
        missing = [kind for kind in ("music", "vision", "llm") if not (datasets_dir / kind / "manifest.json").is_file()]
        if "llm" not in missing and not (tiny_base_dir(datasets_dir / "llm", self.family) / "config.json").is_file():
            missing.append("llm")
        if not missing:
            return
        command = [sys.executable, "-m", "grader", "prepare-data", "--out", str(datasets_dir)]
        command += ["--option", f"base_families={self.family}"]
        for kind in missing:
            command += ["--lab", kind]
        result = subprocess.run(command, capture_output=True, text=True, cwd=settings.BASE_DIR)
        if result.returncode not in (0, 4):
            raise CommandError(f"prepare-data failed:\n{result.stderr[-3000:]}")
        if result.returncode == 4:
            self.out.write(f"\n  ! some labs could not be prepared: {result.stdout.strip()[-500:]}\n")

    def train_references(self, datasets_dir: Path, references: Path):
        wanted = set()
        for kind, items in BASELINES.items():
            wanted.update((kind, variant) for variant, _ in items)
        for kind, items in STUDENT_VARIANTS.items():
            wanted.update((kind, variant) for _, variant, _ in items)
        for kind, variant in sorted(wanted):
            target = demo_course.reference_dir(references, kind, variant, self.family)
            if not (datasets_dir / kind / "manifest.json").is_file() or any(target.glob("*.json")):
                continue
            extra = TRAIN_OPTIONS.get((kind, variant), ["--variant", variant])
            if kind == "llm":
                extra = [*extra, "--option", f"base_model={tiny_base_dir(datasets_dir / kind, self.family)}"]
            with Step(self.out, f"training the {kind} {variant} model on the CPU"):
                result = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "grader",
                        "train-reference",
                        "--lab",
                        kind,
                        "--data",
                        str(datasets_dir / kind),
                        "--out",
                        str(target),
                        *extra,
                    ],
                    capture_output=True,
                    text=True,
                    cwd=settings.BASE_DIR,
                )
                if result.returncode != 0:
                    raise CommandError(f"training {kind}/{variant} failed:\n{result.stderr[-3000:]}")

    def _spawn(self, command: list[str], log: Path) -> subprocess.Popen:
        handle = log.open("ab")
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ},
        )
        self.processes.append(process)
        return process

    def start_worker(self, var: Path):
        queues = "default," + ",".join(settings.GRADING_QUEUES.values())
        self._spawn(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-B",
                "-Q",
                queues,
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "-s",
                str(var / "celerybeat-schedule"),
            ],
            var / "worker.log",
        )
        self.out.write(f"  ✓ Celery worker and beat started (log: {var / 'worker.log'})\n")

    def start_web(self, port: int):
        self._spawn(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--timeout",
                "120",
                "--access-logfile",
                "-",
            ],
            Path(settings.VAR_DIR) / "web.log",
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.base_url}/accounts/login/", timeout=2)  # noqa: S310 - loopback
                break
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        else:
            raise CommandError(f"the web server did not start; see {settings.VAR_DIR}/web.log")
        self.out.write(f"  ✓ web server at {self.base_url}\n")

    def submit_everything(self, course, labs, references: Path):
        staff = demo_course.member(course, "ta@demo.edu")
        by_kind = {lab.kind: lab for lab in labs}
        count = 0
        for kind, items in BASELINES.items():
            lab = by_kind.get(kind)
            if lab is None or lab.dataset is None:
                continue
            for variant, label in items:
                folder = demo_course.reference_dir(references, kind, variant, self.family)
                if not folder.is_dir():
                    continue
                uploads = {p.name: FileUpload(p) for p in sorted(folder.iterdir()) if p.is_file()}
                artifact = collect(
                    kind=kind, uploads=uploads, max_bytes=lab.max_artifact_bytes, options=lab.check_options()
                )
                submit_baseline(lab=lab, owner=staff, artifact=artifact, label=label)
                count += 1
        tokens = {}
        for kind, items in STUDENT_VARIANTS.items():
            lab = by_kind.get(kind)
            if lab is None or lab.dataset is None:
                continue
            for email, variant, description in items:
                folder = demo_course.reference_dir(references, kind, variant, self.family)
                if not folder.is_dir():
                    continue
                if email not in tokens:
                    tokens[email] = create_token(
                        member=demo_course.member(course, email), name="demo notebook", days=30
                    )[1]
                status, body = post_artifact(
                    f"{self.base_url}/api/labs/{lab.slug}/submissions", tokens[email], folder, description
                )
                if status != 201:
                    self.out.write(f"  ! {email} {kind}/{variant}: {status} {body}\n")
                count += 1
        self.out.write(f"  ✓ {count} submissions sent (baselines in-process, students through the token API)\n")

    def projects(self, course, created: bool):
        with Step(self.out, "final projects: groups, slides and paper reviews"):
            seed_projects(course)

    def judging(self, course):
        with Step(self.out, "a judging round scored, prizes computed and confirmed"):
            seed_judging(course)

    def wait_for_grading(self, course, timeout: int):
        started = time.monotonic()
        evaluations = Evaluation.objects.filter(submission__lab__course=course)
        while True:
            total = evaluations.count()
            active = evaluations.filter(status__in=ACTIVE_STATES).count()
            running = evaluations.filter(status="running").count()
            elapsed = time.monotonic() - started
            bar = "#" * int(20 * (total - active) / max(total, 1))
            self.out.write(
                f"\r  … grading in the sandbox [{bar:<20}] {total - active}/{total} done, {running} running "
                f"({elapsed:.0f} s)  "
            )
            self.out.flush()
            if active == 0:
                break
            if elapsed > timeout:
                raise CommandError(f"grading did not finish within {timeout} s; see {settings.VAR_DIR}/worker.log")
            if any(p.poll() is not None for p in self.processes):
                raise CommandError(f"a demo process stopped; see {settings.VAR_DIR}/worker.log and web.log")
            time.sleep(1)
        states = {s: evaluations.filter(status=s).count() for s in ("succeeded", "failed", "error")}
        self.out.write(
            f"\r  ✓ graded: {states['succeeded']} succeeded, {states['failed']} failed (the student's fault), "
            f"{states['error']} platform errors ({time.monotonic() - started:.0f} s)\n"
        )

    def summary(self, course, labs):
        ta = demo_course.member(course, "ta@demo.edu")
        for lab in labs:
            board = leaderboard_for(lab=lab, split="public", viewer=ta)
            key = leaderboard_columns(lab)[0][0]
            self.out.write(f"\n  Lab {lab.number} leaderboard ({key}):\n")
            for row in board.rows[:6]:
                value = row.metrics.get(key)
                shown = "n/a" if value is None else f"{value:.4f}"
                rank = "  —" if row.baseline else f"{row.rank:3d}"
                self.out.write(f"   {rank}  {row.name:<34} {shown}\n")
        self.out.write(f"\nOpen {self.base_url}/ and sign in (password for everyone: {demo_course.PASSWORD}):\n")
        for email, name, role, _, _ in demo_course.PEOPLE:
            self.out.write(f"  {role:<10} {email:<22} {name}\n")
