"""Of node_modules only the files the pages use are served: no package's sources, manifests or lock files."""

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

from config.vendor_files import VENDOR_FILES

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / "node_modules"
STATIC_TAG = re.compile(r"""{%\s*static\s+['"](vendor/[^'"]+)['"]""")


def vendor_files_the_templates_use() -> set[str]:
    used = set()
    for folder in [REPO / "templates", *REPO.glob("*/templates")]:
        for template in folder.rglob("*.html"):
            used.update(STATIC_TAG.findall(template.read_text(encoding="utf-8")))
    return used


def test_every_vendor_file_a_template_uses_is_served_and_only_those_are_listed(client):
    used = vendor_files_the_templates_use()
    assert "vendor/abcjs/dist/abcjs-basic-min.js" in used
    for name in sorted(used):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert b"".join(response.streaming_content) == (NODE_MODULES / name.removeprefix("vendor/")).read_bytes()
    assert used == {f"vendor/{name}" for name in VENDOR_FILES}


@pytest.mark.parametrize(
    "name",
    [
        ".package-lock.json",
        ".installed",
        "abcjs/package.json",
        "abcjs/README.md",
        "abcjs/dist/abcjs-basic.js.map",
        "abcjs/dist/abcjs-plugin-min.js",
        "abcjs/src/api/abc_tunebook.js",
        "axe-core/axe.min.js",
        "axe-core/package.json",
    ],
)
def test_any_other_file_of_node_modules_is_not_found(client, name):
    assert (NODE_MODULES / name).is_file()  # there to be served, were the folder served
    assert client.get(f"/static/vendor/{name}").status_code == 404
    assert finders.find(f"vendor/{name}") is None


@pytest.mark.parametrize("path", ["vendor/../package-lock.json", "vendor/abcjs/../package.json", "vendor/"])
def test_paths_that_climb_or_name_the_folder_are_not_found(client, path):
    assert client.get(f"/static/{path}").status_code == 404
    assert finders.find(path) is None


def test_collectstatic_gathers_only_the_listed_vendor_files():
    finder = finders.get_finder("config.vendor_files.VendorFinder")
    assert sorted(name for name, _storage in finder.list(None)) == sorted(VENDOR_FILES)
