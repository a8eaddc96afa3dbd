"""A stand-in for a hostile parser, run by the tests through grader.limited_child: it does what ARGV[1] says.

environ         print (as JSON) the environment this process was started with and the one it runs with
limits          print (as JSON) the resource limits this process runs under
spin            start a descendant that sleeps, print both pids, then burn CPU forever
burn            burn CPU forever
allocate BYTES  allocate BYTES of memory
flood OUT ERR   write ERR bytes to stderr, then OUT bytes to stdout
write PATH      write one byte to the file PATH
connect PORT    connect to 127.0.0.1:PORT and send a byte; print what happened
"""

import json
import os
import resource
import sys
import time

CHUNK = 1 << 20


def environ() -> None:
    with open("/proc/self/environ", "rb") as handle:
        started = [entry.decode() for entry in handle.read().split(b"\0") if entry]
    print(json.dumps({"proc_self_environ": started, "os_environ": dict(os.environ)}))


def limits() -> None:
    names = ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE")
    print(json.dumps({name: list(resource.getrlimit(getattr(resource, name))) for name in names}))


def spin() -> None:
    descendant = os.fork()
    if descendant == 0:
        time.sleep(600)
        os._exit(0)
    print(json.dumps({"pid": os.getpid(), "descendant": descendant}), flush=True)
    burn()


def connect(port: int) -> None:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"x")
        print(json.dumps({"connected": True}))
    except OSError as exc:
        print(json.dumps({"connected": False, "error": str(exc)}))


def burn() -> None:
    while True:
        pass


def allocate(size: int) -> None:
    print(len(bytearray(size)))


def flood(out_bytes: int, err_bytes: int) -> None:
    chunk = b"e" * CHUNK
    for start in range(0, err_bytes, CHUNK):
        sys.stderr.buffer.write(chunk[: err_bytes - start])
    sys.stderr.buffer.flush()
    chunk = b"o" * CHUNK
    for start in range(0, out_bytes, CHUNK):
        sys.stdout.buffer.write(chunk[: out_bytes - start])
    sys.stdout.buffer.flush()


def write(path: str) -> None:
    with open(path, "wb") as handle:
        handle.write(b"x")


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "environ":
        environ()
    elif command == "limits":
        limits()
    elif command == "spin":
        spin()
    elif command == "burn":
        burn()
    elif command == "allocate":
        allocate(int(rest[0]))
    elif command == "flood":
        flood(int(rest[0]), int(rest[1]))
    elif command == "write":
        write(rest[0])
    elif command == "connect":
        connect(int(rest[0]))
    else:
        sys.exit(f"unknown command {command!r}")
