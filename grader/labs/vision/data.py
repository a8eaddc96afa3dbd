"""The vision lab's demo hidden set: augmented course faces by group and non-face crops, and how to load a split."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from grader.errors import GraderFault

IMAGE_SIZE = 64
GROUPS = ("LF", "LM", "DF", "DM")
PUBLIC_FACES_PER_GROUP = 3
AUGMENTATIONS_PER_FACE = 40
# scikit-image's bundled photos that show no person (astronaut and camera do, so they are never used).
NONFACE_PHOTOS = (
    "coffee",
    "rocket",
    "chelsea",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "grass",
    "gravel",
    "brick",
)
CROPS_PER_PHOTO = 40

DESCRIPTION = (
    "Demo only: the course's 20 public test faces (5 per group LF, LM, DF, DM) with deterministic augmentations, "
    "split by source face into public and private, and 64x64 non-face crops of scikit-image's bundled photos. "
    "Students have seen these faces; a real course registers a hidden set of its own."
)


def _square(image: Image.Image) -> Image.Image:
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def augment_face(image: Image.Image, rng: np.random.Generator, *, identity: bool) -> Image.Image:
    """One deterministic variant of a face: crop/shift, small rotation, mirror, brightness and contrast."""
    face = _square(image.convert("RGB"))
    side = face.size[0]
    if identity:
        return face.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    angle = float(rng.uniform(-10, 10))
    face = face.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))
    scale = float(rng.uniform(0.78, 1.0))
    crop = max(8, int(round(side * scale)))
    left = int(rng.integers(0, side - crop + 1))
    top = int(rng.integers(0, side - crop + 1))
    face = face.crop((left, top, left + crop, top + crop)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        face = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    face = ImageEnhance.Brightness(face).enhance(float(rng.uniform(0.8, 1.2)))
    return ImageEnhance.Contrast(face).enhance(float(rng.uniform(0.85, 1.15)))


def nonface_crop(photo: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A random square crop of a photo (between 64 pixels and half its short side), resized to 64x64."""
    if photo.ndim == 2:
        photo = np.stack([photo] * 3, axis=-1)
    image = Image.fromarray(np.ascontiguousarray(photo[..., :3]).astype(np.uint8), "RGB")
    w, h = image.size
    side = int(rng.integers(IMAGE_SIZE, max(IMAGE_SIZE, min(w, h) // 2) + 1))
    left = int(rng.integers(0, w - side + 1))
    top = int(rng.integers(0, h - side + 1))
    crop = image.crop((left, top, left + side, top + side)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return crop


def _face_files(course_data: Path, group: str) -> list[Path]:
    folder = course_data / "faces" / group
    files = [p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")] if folder.is_dir() else []
    if not files:
        raise GraderFault("course_data_missing", f"no face images in {folder}")
    # Numeric order (2.png before 10.png) so that the split does not depend on how the names sort as text.
    return sorted(files, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)])


def write_demo_set(course_data: Path, out_dir: Path, *, seed: int) -> dict[str, Any]:
    """Write the images under ``out_dir`` and return the splits for the manifest."""
    import skimage.data

    splits: dict[str, list[dict[str, Any]]] = {"public": [], "private": []}
    (out_dir / "faces").mkdir(parents=True, exist_ok=True)
    (out_dir / "nonfaces").mkdir(parents=True, exist_ok=True)
    for g_index, group in enumerate(GROUPS):
        files = _face_files(Path(course_data), group)
        order = np.random.default_rng([seed, 1, g_index]).permutation(len(files))
        for rank, f_index in enumerate(order):
            path = files[int(f_index)]
            split = "public" if rank < PUBLIC_FACES_PER_GROUP else "private"
            source = f"{group}/{path.stem}"
            with Image.open(path) as original:
                original.load()
                for k in range(AUGMENTATIONS_PER_FACE):
                    rng = np.random.default_rng([seed, 2, g_index, int(f_index), k])
                    variant = augment_face(original, rng, identity=(k == 0))
                    rel = f"faces/{group}_{path.stem}_{k:02d}.png"
                    variant.save(out_dir / rel, format="PNG", optimize=False)
                    splits[split].append({"file": rel, "label": 1, "group": group, "source": source})
    for p_index, name in enumerate(NONFACE_PHOTOS):
        photo = getattr(skimage.data, name)()
        assignment = np.random.default_rng([seed, 3, p_index]).permutation(CROPS_PER_PHOTO)
        for k in range(CROPS_PER_PHOTO):
            rng = np.random.default_rng([seed, 4, p_index, k])
            crop = nonface_crop(photo, rng)
            rel = f"nonfaces/{name}_{k:02d}.png"
            crop.save(out_dir / rel, format="PNG", optimize=False)
            split = "public" if assignment[k] < CROPS_PER_PHOTO // 2 else "private"
            splits[split].append({"file": rel, "label": 0, "group": None, "source": f"{name}/{k:02d}"})
    return {split: {"items": items} for split, items in splits.items()}


def split_items(manifest: Any, split: str) -> list[dict[str, Any]]:
    try:
        items = manifest.splits[split]["items"]
    except (KeyError, TypeError):
        raise GraderFault("dataset_corrupt", f"the vision dataset has no {split!r} split with items")
    return list(items)


# The images a warm box decoded before its job: kept with the verified manifest they came from, so that only a job
# on that very manifest object (the same mounted, verified dataset) reads them from memory.
_preloaded: dict[str, Any] = {}


def preload_images(manifest: Any, splits: tuple[str, ...]) -> None:
    """Decode every image of ``splits`` now (a warm box, before its job arrives)."""
    _preloaded.clear()
    _preloaded["images"] = {split: load_images(manifest, split_items(manifest, split)) for split in splits}
    _preloaded["manifest"] = manifest


def split_images(manifest: Any, split: str, items: list[dict[str, Any]]) -> np.ndarray:
    """The images of ``items`` (the split's, in order): decoded ahead where the warm box did, else now."""
    if _preloaded.get("manifest") is manifest and split in _preloaded["images"]:
        return _preloaded["images"][split]
    return load_images(manifest, items)


def load_images(manifest: Any, items: list[dict[str, Any]]) -> np.ndarray:
    """Float32 images [N, 3, 64, 64] in [0, 1] of the listed items (files the manifest lists, nothing else)."""
    out = np.empty((len(items), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for i, item in enumerate(items):
        with Image.open(manifest.file(item["file"])) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.float32)
        if array.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise GraderFault("dataset_corrupt", f"{item['file']} is not a {IMAGE_SIZE}x{IMAGE_SIZE} image")
        out[i] = array.transpose(2, 0, 1) / 255.0
    return out
