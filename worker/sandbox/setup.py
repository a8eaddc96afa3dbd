"""Prepares a machine for boxes: the dedicated sandbox user and the staging root (run once, as root).

python -m worker.sandbox.setup [--user grader-sandbox] [--staging /run/grader-sandbox]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from worker.sandbox.account import DEFAULT_USER, ensure_sandbox_user
from worker.sandbox.staging import prepare_root

DEFAULT_STAGING = Path("/run/grader-sandbox")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", default=os.environ.get("SANDBOX_USER", DEFAULT_USER))
    parser.add_argument("--staging", type=Path, default=Path(os.environ.get("SANDBOX_STAGING_DIR", DEFAULT_STAGING)))
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run this as root: it creates a system user and a root-owned folder", file=sys.stderr)
        return 1
    user = ensure_sandbox_user(args.user)
    prepare_root(args.staging, user)
    print(f"sandbox user {user.name} (uid {user.uid}, gid {user.gid}); staging root {args.staging}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
