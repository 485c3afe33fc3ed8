"""Runs irconv's CLI in forked children under time, memory and file-size limits.

Started once per test session as its own process (so it holds only irconv and its core
dependencies, never the torch/TF the rest of the suite imports): it imports irconv, warms the
caches every command builds, then serves one JSON request per stdin line:

    {"argv": [...], "cwd": DIR, "stdout": FILE, "stderr": FILE, "stdin": FILE|null,
     "stdin_pipe": BOOL, "timeout": S, "mem": BYTES, "fsize": BYTES|null}

(stdin_pipe: FILE reaches stdin through an OS pipe, fed by a process of its own, as in
`irconv import ... | irconv export ...`, instead of as the regular file itself)

and answers one JSON line: {"rc", "signal", "timed_out", "seconds", "maxrss"}. A child that
crashes (segfault), exhausts its address-space allowance or outlives the timeout is reported,
never waited on forever. A fork costs milliseconds, where a fresh interpreter costs a second
of imports, so hundreds of hostile files run in well under two minutes.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _warm() -> None:
    """Build the lazily compiled name tables once, here, so every child inherits them."""
    from irconv.models import FAMILIES
    for fam in FAMILIES:
        for view in fam.views:
            try:
                fam.view(view)
            except Exception:
                pass


def _child(req: dict, cli) -> None:
    feeder = None
    try:
        os.chdir(req["cwd"])
        feeder = None
        if req.get("stdin_pipe"):
            stdin, feeder = _piped(req["stdin"])
        else:
            stdin = os.open(req.get("stdin") or os.devnull, os.O_RDONLY)
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(stdin, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in {stdin, out, err} - {0, 1, 2}:
            os.close(fd)
        # Allow `mem` bytes of address space beyond what the interpreter already maps.
        limit = _vm_size() + int(req["mem"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        cpu = int(req["timeout"]) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        if req.get("fsize") is not None:
            # A write past the limit fails with EFBIG (the signal would kill the process instead).
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (int(req["fsize"]), int(req["fsize"])))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        rc = cli.main(req["argv"])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        rc = 99
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        if feeder is not None:           # the feeder ends on EPIPE once stdin is closed
            os.close(0)
            os.waitpid(feeder, 0)
    finally:
        os._exit(rc if isinstance(rc, int) else 1)


def _piped(path: str) -> tuple[int, int]:
    """(the read end of a pipe a child process fills with the file's bytes, its pid)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    os.write(write, chunk)      # a short write cannot happen on a blocking pipe
        except OSError:                         # the reader went away (EPIPE)
            pass
        os._exit(0)
    os.close(write)
    return read, pid


def serve() -> None:
    from irconv import cli
    _warm()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(req, cli)
        timed_out = False
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() - start > req["timeout"]:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                done, status, usage = os.wait4(pid, 0)
                break
            time.sleep(0.005)
        reply = {"rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                 "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                 "timed_out": timed_out, "seconds": time.monotonic() - start,
                 "maxrss": usage.ru_maxrss * 1024}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    serve()
