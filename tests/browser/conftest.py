"""A headless Chromium against the live server: pages that record every console error, failed request and serious
accessibility violation (axe-core, colour contrast included) of every page and state a journey reaches."""

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connections
from django.urls import reverse

from tests.conftest import PASSWORD
from tests.e2e.conftest import clean_broker, start_worker  # noqa: F401 - the grading journey runs a real worker

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
AXE_SOURCE = AXE.read_text()
OUTPUT = REPO / "test-output"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# axe-core files text whose colour equals its background ("equalRatio", 1:1) under "incomplete", taking it for text
# hidden on purpose; on this site it is a white-on-white button, so it counts as a violation.
AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations", "incomplete"]});
  const invisible = result.incomplete
    .filter(v => v.id === "color-contrast")
    .map(v => ({...v, nodes: v.nodes.filter(n => n.any.some(c => c.data && c.data.messageKey === "equalRatio"))}))
    .filter(v => v.nodes.length > 0);
  return [...result.violations, ...invisible]
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(" | ")}`);
}"""
# A button (or a link drawn as one) whose label breaks over two lines ("Re-/run"): the lines its label's text sits on,
# counted from the boxes of its text; a new line starts below the middle of the one before.
WRAPPED_BUTTONS = """() => Array.from(document.querySelectorAll("button:not(.link), a.button, [role=button]"))
  .filter(button => button.getClientRects().length > 0 && getComputedStyle(button).visibility !== "hidden")
  .map(button => {
    const walker = document.createTreeWalker(button, NodeFilter.SHOW_TEXT);
    const boxes = [];
    for (let text = walker.nextNode(); text; text = walker.nextNode()) {
      if (!text.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(text);
      boxes.push(...Array.from(range.getClientRects()).filter(box => box.width > 0 && box.height > 0));
    }
    boxes.sort((a, b) => a.top - b.top);
    let lines = 0, middle = -Infinity;
    for (const box of boxes) {
      if (box.top > middle) { lines += 1; middle = box.top + box.height / 2; }
    }
    return {label: button.textContent.replace(/\\s+/g, " ").trim(), lines};
  })
  .filter(button => button.lines > 1)
  .map(button => `"${button.label}" on ${button.lines} lines`)"""
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}


@dataclass
class Problems:
    """What went wrong on a page that no user should ever see: console errors, uncaught exceptions, bad requests."""

    expected: list[tuple[str, int]] = field(default_factory=list)
    found: list[str] = field(default_factory=list)

    def is_expected(self, url: str, status: int | None = None) -> bool:
        return any(part in url and (status is None or status == code) for part, code in self.expected)

    def console(self, message):
        if message.type != "error":
            return
        # Chromium logs every 4xx/5xx resource as a console error as well; those are judged as responses below.
        location = message.location.get("url", "") if message.location else ""
        if message.text.startswith("Failed to load resource") and self.is_expected(location):
            return
        self.found.append(f"console error: {message.text} ({location})")

    def page_error(self, error):
        self.found.append(f"uncaught exception: {error}")

    def request_failed(self, request):
        failure = request.failure or ""
        # A poll still in flight when the page navigates is cancelled by the browser: not a fault of the page.
        if "ERR_ABORTED" in failure and request.resource_type in ("xhr", "fetch"):
            return
        self.found.append(f"request failed: {request.method} {request.url}: {failure}")

    def response(self, response):
        if response.status >= 400 and not self.is_expected(response.url, response.status):
            self.found.append(f"HTTP {response.status}: {response.request.method} {response.url}")


class Browser:
    """One person's browser: a fresh profile, its own cookies, one page that is watched for problems."""

    def __init__(self, playwright, *, base_url: str, profile: Path, viewport: str, shots: Path, bypass_csp=False):
        self.base_url = base_url
        self.viewport = viewport
        self.shots = shots
        self.problems = Problems()
        self.checked = False
        self.context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            base_url=base_url,
            bypass_csp=bypass_csp,
            locale="en-US",
            timezone_id="Europe/Paris",
            **VIEWPORTS[viewport],
        )
        self.context.set_default_timeout(10_000)
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("console", self.problems.console)
        self.page.on("pageerror", self.problems.page_error)
        self.page.on("requestfailed", self.problems.request_failed)
        self.page.on("response", self.problems.response)

    def expect_status(self, url_part: str, status: int):
        """A response the journey itself expects (say, a 403 a judge must get)."""
        self.problems.expected.append((url_part, status))

    def goto(self, path: str):
        response = self.page.goto(path)
        self.page.wait_for_load_state("load")
        self.audit()
        return response

    def audit(self):
        """Records the serious accessibility violations of the page as it is now (a state, not only a URL), and every
        button whose label wraps onto a second line."""
        # Evaluated through the DevTools protocol, which the site's CSP does not govern, so the page is audited as
        # it is served; an inline <script> tag would be refused.
        if not self.page.evaluate("() => typeof window.axe !== 'undefined'"):
            self.page.evaluate(AXE_SOURCE)
        where = self.page.url.removeprefix(self.base_url)
        for violation in self.page.evaluate(AXE_RUN):
            found = f"accessibility of {where}: {violation}"
            if found not in self.problems.found:
                self.problems.found.append(found)
        for wrapped in self.page.evaluate(WRAPPED_BUTTONS):
            found = f"button label wraps on {where} ({self.viewport}): {wrapped}"
            if found not in self.problems.found:
                self.problems.found.append(found)

    def sign_in(self, member):
        self.goto(reverse("login"))
        self.page.get_by_label("E-mail").fill(member.user.email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state("load")
        assert "/accounts/login/" not in self.page.url, self.page.content()[:2000]

    def shot(self, name: str):
        self.audit()
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.shots / f"{self.viewport}-{name}.png"), full_page=True)

    def assert_fits_the_screen(self):
        """No sideways scrolling of the whole page, and no table cell wider than the screen (on a phone, rows stack)."""
        overflow = self.page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{self.page.url} is {overflow}px wider than the {self.viewport} screen"
        wide = self.page.evaluate(
            """() => Array.from(document.querySelectorAll("td, th"))
                .filter(cell => cell.scrollWidth > window.innerWidth)
                .slice(0, 5)
                .map(cell => `${cell.scrollWidth}px: ${cell.textContent.trim().slice(0, 60)}`)"""
        )
        assert wide == [], f"{self.page.url}: table cells wider than the {self.viewport} screen: {wide}"
        if self.viewport == "phone":
            # A stacked table fits the screen: its box does not scroll sideways either.
            scrolling = self.page.evaluate(
                """() => Array.from(document.querySelectorAll(".table-wrap"))
                    .filter(wrap => wrap.scrollWidth > wrap.clientWidth + 1).length"""
            )
            assert scrolling == 0, f"{self.page.url}: {scrolling} tables scroll sideways on the phone"

    def sheet_music(self) -> list[dict]:
        """How each drawn song sits on the page: its scale against abcjs's own size, its smallest note head, whether
        it fits or scrolls in its own box, and what its player overlaps."""
        return self.page.evaluate(
            """() => Array.from(document.querySelectorAll(".abc-notation")).filter(box => box.querySelector("svg"))
              .map(box => {
                const svg = box.querySelector("svg");
                const drawn = svg.getBoundingClientRect();
                const view = svg.viewBox.baseVal;
                const heads = Array.from(svg.querySelectorAll(".abcjs-notehead"))
                  .map(head => head.getBoundingClientRect().height);
                const figure = box.closest("figure");
                const player = figure.querySelector(".abc-audio").getBoundingClientRect();
                const meets = (a, b) => b && b.width > 0 && a.width > 0 &&
                  a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
                const rectOf = element => element && element.getBoundingClientRect();
                const covered = [
                  ["the song's caption", rectOf(figure.querySelector("figcaption"))],
                  ["the tune's title", rectOf(svg.querySelector(".abcjs-title"))],
                  ["the sheet music", box.getBoundingClientRect()],
                ].filter(([, rect]) => meets(player, rect)).map(([name]) => name);
                return {
                  id: box.id,
                  scale: view && view.width ? drawn.width / view.width : 1,
                  note_head: heads.length ? Math.min(...heads) : 0,
                  overflows: box.scrollWidth > box.clientWidth + 1,
                  scrolls: ["auto", "scroll"].includes(getComputedStyle(box).overflowX),
                  player_covers: covered,
                };
              })"""
        )

    def assert_sheet_music_is_readable(self):
        """Sheet music keeps notes a person can read: never shrunk below abcjs's own size, so a note head stays about
        a staff space of printed music tall (1.7 mm, 7 CSS px; it is 8 px at that size); a tune wider than the screen
        breaks into more staves or scrolls inside its own box; its player covers neither its title nor its notes."""
        songs = self.sheet_music()
        assert songs, f"{self.page.url}: no sheet music was drawn"
        for song in songs:
            where = f"{self.page.url} {song['id']} ({self.viewport})"
            assert song["scale"] >= 0.99, f"{where}: the sheet music is shrunk to {song['scale']:.2f} of its size"
            assert song["note_head"] >= 7, f"{where}: note heads are {song['note_head']:.1f}px tall"
            assert not song["overflows"] or song["scrolls"], f"{where}: the sheet music is cut off at its box's edge"
            assert song["player_covers"] == [], f"{where}: the player covers {', '.join(song['player_covers'])}"

    def assert_clean(self):
        self.audit()
        self.checked = True
        assert self.problems.found == [], "\n".join(self.problems.found)

    def close(self):
        self.context.close()


@pytest.fixture
def browsers(request, live_server, tmp_path, monkeypatch):
    """Opens browsers for a journey; each journey fails on any problem any of its pages recorded."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    shots = OUTPUT / name
    opened: list[Browser] = []
    with sync_playwright() as playwright:

        def open_browser(viewport: str = "desktop", *, bypass_csp: bool = False) -> Browser:
            browser = Browser(
                playwright,
                base_url=live_server.url,
                profile=tmp_path / f"profile-{len(opened)}",
                viewport=viewport,
                shots=shots,
                bypass_csp=bypass_csp,
            )
            opened.append(browser)
            return browser

        try:
            yield open_browser
            # A journey that ended without looking at a browser's problems still fails on them.
            report = getattr(request.node, "report_call", None)
            if report is not None and report.passed:
                for browser in opened:
                    if not browser.checked:
                        browser.assert_clean()
        finally:
            for browser in opened:
                browser.close()
            # While Playwright's loop runs, the ORM works on a connection of its own: close it, or the test database
            # cannot be dropped at the end of the session.
            connections.close_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.report_call = report
    return report


@pytest.fixture(params=["desktop", "phone"])
def viewport(request):
    return request.param
