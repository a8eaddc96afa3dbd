"""Lab 3's base models: staff register one with its config.json; PEFT derives its module table in a limited child.

The child (``python -m grader.labs.llm.modules CONFIG``) builds the model on the meta device, with no weights, no
network and no remote code; the web process itself never imports torch. The table is stored with the lab, so that
every upload is checked against it from the safetensors header alone.
"""

import json
import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from courses import audit
from grader.labs.llm.modules import MAX_CONFIG_BYTES, BaseConfigRefused, config_sha256, read_config_bytes
from grader.limited_child import ChildLimits, run_limited
from labs.models import BaseModel, Lab

log = logging.getLogger(__name__)

__all__ = ["MAX_CONFIG_BYTES", "describe", "derive_table", "register_base_model"]

# Importing torch and transformers reserves a lot of address space without touching it; the meta model itself
# needs little memory whatever the model's size.
DERIVE_LIMITS = ChildLimits(
    cpu_seconds=120,
    memory_bytes=16 * 1024**3,
    file_size_bytes=1024 * 1024,
    wall_seconds=180,
    output_bytes=8 * 1024 * 1024,
)


def derive_table(config_bytes: bytes) -> dict:
    """The module table of the model ``config_bytes`` describes, or ValidationError with a plain reason."""
    try:
        read_config_bytes(config_bytes)
    except BaseConfigRefused as exc:
        raise ValidationError(str(exc))
    with tempfile.TemporaryDirectory(prefix="base-config-", dir=settings.FILE_UPLOAD_TEMP_DIR) as scratch:
        path = Path(scratch) / "config.json"
        path.write_bytes(config_bytes)
        done = run_limited("grader.labs.llm.modules", [str(path)], limits=DERIVE_LIMITS, cwd=scratch)
    try:
        verdict = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError, UnicodeDecodeError):
        log.error("deriving a base model's modules failed: %s", done.stderr[-2000:].decode(errors="replace"))
        raise ValidationError(
            "The model's layers could not be worked out from this config.json"
            + (" within the time allowed" if done.timed_out else "")
            + "; the server log has the details."
        )
    if not verdict.get("ok"):
        raise ValidationError(str(verdict.get("error"))[:500])
    return verdict["table"]


def register_base_model(*, lab: Lab, actor, name: str, folder: str, config_bytes: bytes) -> BaseModel:
    """Register the base model of ``lab`` (Lab 3) and make it the one its adapters must fit; audited."""
    from grader.registry import get_lab

    if not get_lab(lab.kind).needs_base_model:
        raise ValidationError(f"{lab} grades no adapter on a base model.")
    name, folder = (name or "").strip(), (folder or "").strip()
    if not name or not folder:
        raise ValidationError("Give the model's name (as adapters name it) and its folder on the grading nodes.")
    if ".." in Path(folder).parts:
        raise ValidationError("The folder must be a name under the nodes' base model folder, or an absolute path.")
    table = derive_table(config_bytes)
    digest = config_sha256(config_bytes)
    with transaction.atomic():
        locked = Lab.objects.select_for_update().get(pk=lab.pk)
        before = locked.base_model.name if locked.base_model_id else None
        base, _ = BaseModel.objects.update_or_create(
            course=locked.course,
            name=name,
            config_sha256=digest,
            defaults={
                "folder": folder,
                "model_type": table["model_type"],
                "config": json.loads(config_bytes),
                "table": table,
                "registered_by": actor,
            },
        )
        locked.base_model = base
        locked.save(update_fields=["base_model"])
        lab.base_model = base  # the caller's instance is the lab it goes on using
        audit.record(
            course=locked.course,
            actor=actor,
            action="lab.base_model",
            target=locked.slug,
            before={"base_model": before},
            after={"base_model": name, "model_type": base.model_type, "config_sha256": digest, "folder": folder},
        )
    return base


def describe(base: BaseModel) -> dict:
    """What the staff page shows of a registered base model."""
    table = base.table or {}
    modules = table.get("modules", {})
    return {
        "name": base.name,
        "model_type": base.model_type,
        "folder": base.folder,
        "config_sha256": base.config_sha256,
        "layers": table.get("num_hidden_layers"),
        "parameters": table.get("parameters"),
        "adaptable": sorted({m.rsplit(".", 1)[-1] for m in modules}),
        "all_linear": sorted({m.rsplit(".", 1)[-1] for m in table.get("all_linear", [])}),
    }
