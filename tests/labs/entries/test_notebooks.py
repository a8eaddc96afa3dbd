"""A hostile or broken notebook: what the rendered copy holds, what she is told, and what is kept of it."""

import nbformat
import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.utils import timezone

from labs.entries import services
from labs.entries.models import EntryFile
from tests.labs.entries.conftest import code, html_output, notebook_bytes, upload

pytestmark = pytest.mark.django_db

SECRET_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def _rendered(lab, student, *cells) -> str:
    data = notebook_bytes(*cells)
    item = services.attach_file(
        lab=lab, member=student, part="notebook", upload=upload("nb.ipynb", data), at=timezone.now()
    )
    with default_storage.open(item.rendered_key, "rb") as handle:
        return handle.read().decode()


def test_script_in_a_markdown_cell_is_not_in_the_rendering(lab, student):
    html = _rendered(lab, student, nbformat.v4.new_markdown_cell("Hello <script>alert('md')</script> world"))
    assert "<script" not in html.lower() and "alert" not in html
    assert "Hello" in html and "world" in html


def test_onerror_in_an_html_output_is_removed(lab, student):
    html = _rendered(lab, student, code("show()", [html_output('<img src="x" onerror="alert(1)"><b>bold</b>')]))
    assert "onerror" not in html and "alert" not in html
    assert "<b>bold</b>" in html


def test_external_image_url_is_dropped_and_small_png_data_kept(lab, student):
    html = _rendered(
        lab,
        student,
        nbformat.v4.new_markdown_cell("![tracker](https://evil.example/pixel.png)"),
        code("plot()", [html_output(f'<img src="data:image/png;base64,{SECRET_PNG}">')]),
    )
    assert "evil.example" not in html
    assert f'src="data:image/png;base64,{SECRET_PNG}"' in html


def test_javascript_link_loses_its_href(lab, student):
    html = _rendered(lab, student, nbformat.v4.new_markdown_cell("[click](javascript:alert(document.cookie))"))
    assert "javascript:" not in html and "click" in html


def test_svg_with_script_is_dropped_everywhere(lab, student):
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script><circle r="4"/></svg>'
    html = _rendered(
        lab,
        student,
        code("a()", [nbformat.v4.new_output("display_data", data={"image/svg+xml": svg, "text/plain": "fig"})]),
        code("b()", [html_output(svg)]),
        nbformat.v4.new_markdown_cell('<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">'),
    )
    assert "<svg" not in html and "<script" not in html and "alert" not in html and "svg+xml" not in html


def test_javascript_and_widget_outputs_are_dropped(lab, student):
    widget = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    html = _rendered(
        lab,
        student,
        code(
            "w",
            [
                nbformat.v4.new_output("display_data", data={"application/javascript": "alert('js')"}),
                nbformat.v4.new_output(
                    "display_data",
                    data={"application/vnd.jupyter.widget-view+json": widget, "text/plain": "Slider()"},
                ),
            ],
        ),
    )
    assert "alert" not in html and "model_id" not in html
    assert "Slider()" in html


def test_an_output_over_the_cap_is_refused_with_a_message(lab, student):
    huge = "x" * (100 * 1024 * 1024)
    data = notebook_bytes(code("print(big)", [nbformat.v4.new_output("stream", text=huge)]))
    lab.entry_kit.max_notebook_bytes = 200 * 1024 * 1024
    lab.entry_kit.save()
    with pytest.raises(ValidationError) as refused:
        services.attach_file(
            lab=lab, member=student, part="notebook", upload=upload("nb.ipynb", data), at=timezone.now()
        )
    assert "outputs may be at most 5 MB each" in refused.value.messages[0]
    assert not EntryFile.objects.exists()


def test_a_notebook_over_the_size_limit_is_refused_before_parsing(lab, student):
    data = notebook_bytes(code("x", [nbformat.v4.new_output("stream", text="y" * (21 * 1024 * 1024))]))
    with pytest.raises(ValidationError) as refused:
        services.attach_file(
            lab=lab, member=student, part="notebook", upload=upload("nb.ipynb", data), at=timezone.now()
        )
    assert "at most 20 MB" in refused.value.messages[0]


def test_broken_json_is_refused_with_a_message(lab, student):
    with pytest.raises(ValidationError) as refused:
        services.attach_file(
            lab=lab, member=student, part="notebook", upload=upload("nb.ipynb", b'{"cells": [,'), at=timezone.now()
        )
    assert "not valid JSON" in refused.value.messages[0]
    assert not EntryFile.objects.exists()


def test_json_that_is_not_a_notebook_is_refused(lab, student):
    with pytest.raises(ValidationError) as refused:
        services.attach_file(
            lab=lab, member=student, part="notebook", upload=upload("nb.ipynb", b'{"cells": 3}'), at=timezone.now()
        )
    assert "not a Jupyter notebook" in refused.value.messages[0]


def test_api_keys_are_reported_masked_and_hold_the_entry_until_confirmed(lab, student):
    comet = "Zq8XkP3mR7tW2vYc9LbN"
    openrouter = "sk-or-v1-" + "0123456789abcdef" * 4
    source = f'COMET_API_KEY = "{comet}"\nos.environ["OPENROUTER_API_KEY"] = "{openrouter}"\nprint(COMET_API_KEY)'
    data = notebook_bytes(code(source, [nbformat.v4.new_output("stream", text=comet + "\n")]))
    item = services.attach_file(
        lab=lab, member=student, part="notebook", upload=upload("nb.ipynb", data), at=timezone.now()
    )
    assert [(f["cell"], f["line"]) for f in item.findings] == [(1, 1), (1, 2)]
    assert item.findings[0]["what"] == "value of COMET_API_KEY"
    for key in (item.key, item.rendered_key):
        with default_storage.open(key, "rb") as handle:
            stored = handle.read().decode()
        assert comet not in stored and openrouter not in stored
        assert "[credential removed]" in stored
    entry = item.entry
    assert (
        "confirmation that the keys found in the notebook are revoked"
        in services.completeness(entry, lab.entry_kit).missing
    )
    assert services.confirm_findings(lab=lab, member=student, at=timezone.now()) == 1
    assert (
        "confirmation that the keys found in the notebook are revoked"
        not in services.completeness(entry, lab.entry_kit).missing
    )
