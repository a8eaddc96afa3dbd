"""Unpacks an uploaded artifact .zip in a child process with time and memory limits (never in the web process).

Started by ``labs.intake`` through ``grader.limited_child``, which sets the limits before this module runs, as
``python -m labs.unzip ZIP OUT_DIR --names a,b --max-bytes N``; prints one JSON line: {"ok": true} or
{"ok": false, "error": "..."} and writes exactly the named files into OUT_DIR.
"""

import argparse
import json
import os
import stat
import sys
import zipfile
from pathlib import Path

MAX_RATIO = 100  # uncompressed / compressed per member: more is a decompression bomb, not weights
CHUNK = 1 << 20


def unpack(zip_path: Path, out_dir: Path, names: set[str], max_bytes: int) -> None:
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"the .zip file could not be read ({exc}); zip the files again") from None
    with archive:
        infos = archive.infolist()
        seen: set[str] = set()
        for info in infos:
            name = info.filename
            if info.is_dir():
                raise ValueError(f"the archive holds a folder ({name!r}); put the files at its top level")
            if name.startswith("/") or "\\" in name or ".." in name.split("/") or "/" in name:
                raise ValueError(f"the archive member {name!r} is not a plain file name at the top level")
            mode = info.external_attr >> 16
            if mode and stat.S_ISLNK(mode):
                raise ValueError(f"the archive member {name!r} is a symbolic link")
            if name in seen:
                raise ValueError(f"the archive holds {name!r} twice")
            seen.add(name)
            if name not in names:
                raise ValueError(
                    f"unexpected file {name!r} in the archive; it must hold exactly {', '.join(sorted(names))}"
                )
            if info.flag_bits & 0x1:
                raise ValueError(f"the archive member {name!r} is encrypted")
        total = 0
        for info in infos:
            limit_member = max(info.compress_size, 1) * MAX_RATIO + CHUNK
            written = 0
            with archive.open(info) as source, open(out_dir / info.filename, "xb") as target:
                while chunk := source.read(CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if total > max_bytes:
                        raise ValueError(
                            f"the unpacked files exceed the lab's limit of {max_bytes // (1024 * 1024)} MB"
                        )
                    if written > limit_member:
                        raise ValueError(f"{info.filename!r} expands far beyond its compressed size (a zip bomb?)")
                    target.write(chunk)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("zip", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--names", required=True)
    parser.add_argument("--max-bytes", type=int, required=True)
    args = parser.parse_args(argv)
    os.umask(0o077)
    try:
        unpack(args.zip, args.out, set(args.names.split(",")), args.max_bytes)
    except ValueError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 1
    except MemoryError:
        print(json.dumps({"ok": False, "error": "the archive needs too much memory to unpack"}))
        return 1
    except OSError as exc:
        print(json.dumps({"ok": False, "error": f"the archive could not be unpacked ({exc.strerror})"}))
        return 1
    print(json.dumps({"ok": True}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
