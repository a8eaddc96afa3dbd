"""The front-end files the pages use, served from node_modules under static/vendor/: these, and nothing else.

Serving node_modules as a folder would publish every package's sources, manifests and lock files; a page that
starts using another file of a package adds it to VENDOR_FILES (tests/security/test_static_files.py checks that
every file a template asks for is served).
"""

from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder, searched_locations
from django.core.checks import Warning
from django.core.files.storage import FileSystemStorage

PREFIX = "vendor"
# Paths inside node_modules, as the templates name them after "vendor/" (package.json pins their versions).
VENDOR_FILES = (
    "abcjs/dist/abcjs-basic-min.js",
    "abcjs/abcjs-audio.css",
)


class VendorFinder(BaseFinder):
    """A static-files finder for the listed files of node_modules, under the ``vendor/`` prefix."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.root = Path(settings.BASE_DIR) / "node_modules"
        self.storage = FileSystemStorage(location=self.root)
        self.storage.prefix = PREFIX

    def _present(self) -> list[str]:
        return [name for name in VENDOR_FILES if (self.root / name).is_file()]

    def check(self, **kwargs):
        if not self.root.is_dir():  # a checkout without `npm ci`: the pages work, without sheet music
            return []
        missing = sorted(set(VENDOR_FILES) - set(self._present()))
        if not missing:
            return []
        return [
            Warning(
                f"node_modules lacks {', '.join(missing)}, which the pages use.",
                hint="Run `npm ci`, or update VENDOR_FILES in config/vendor_files.py after a package upgrade.",
                id="config.W001",
            )
        ]

    def find(self, path, find_all=False, **kwargs):
        find_all = self._check_deprecated_find_param(find_all=find_all, **kwargs)
        name = path.removeprefix(PREFIX + "/") if path.startswith(PREFIX + "/") else None
        if str(self.root) not in searched_locations:
            searched_locations.append(str(self.root))
        if name in VENDOR_FILES and (self.root / name).is_file():
            found = str(self.root / name)
            return [found] if find_all else found
        return []  # as Django's own finders answer "not here", either way

    def list(self, ignore_patterns):
        for name in self._present():
            yield name, self.storage
