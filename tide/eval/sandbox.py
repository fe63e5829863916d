"""Run model-written Python in a throw-away subprocess with limits: the code-task sandbox.

``run_program(source)`` writes ``source`` to a fresh temporary directory and runs it with
``sys.executable -I`` in its own session / process group, with these layers (each used when the
machine allows it; :func:`isolation_report` says which are active):

* resource limits set in the child: ``RLIMIT_AS`` (memory), ``RLIMIT_CPU``, ``RLIMIT_FSIZE``,
  ``RLIMIT_NPROC`` (not enforced for root), no core files;
* a Python prelude that makes non-Unix sockets fail, caps the number of processes the program and
  all its descendants may start (a counter file under ``flock``, shared by every descendant), and
  refuses ``setsid``/``setpgid`` and signalling other process groups, so nothing leaves the group;
* a ``pids`` cgroup with ``pids.max = max_procs`` (kernel-enforced fork cap; root needed);
* ``unshare --pid --net``: a new PID namespace (when its init ends, the kernel kills every process
  left in it) and an empty network namespace (no interfaces, so no network at all);
* at the wall deadline, and after every run, the whole process group and cgroup are SIGKILLed.

This contains mistakes (endless loops, fork bombs, huge allocations, stray servers); it is not a
security boundary against code written to escape (the file system is not isolated).

``check_solution(program, test, entry_point)`` runs ``program + test + check(entry_point)``.
"""

from __future__ import annotations

import functools
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

MAX_OUTPUT_CHARS = 10_000
FILE_SIZE_MB = 16
STATUSES = ("passed", "failed", "timeout", "error")


@dataclass
class ExecResult:
    """What a sandboxed run did. ``status``: ``passed`` (exit 0), ``failed`` (an
    ``AssertionError`` ended it), ``timeout`` (wall deadline or CPU limit) or ``error`` (any other
    failure: exception, syntax error, memory limit, signal). Outputs are cut to 10k characters."""

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float


# --- the prelude the child runs before the program ------------------------------------------
_RUNNER = r'''
import os, sys

def _sandbox_guard(max_procs, counter):
    import fcntl, socket, subprocess

    def take_slot():
        with open(counter, "r+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            used = int(fh.read() or 0)
            if used >= max_procs:
                raise BlockingIOError(11, "sandbox: process limit reached")
            fh.seek(0)
            fh.write(str(used + 1))
            fh.truncate()

    def counted(fn):
        def wrapper(*args, **kwargs):
            take_slot()
            return fn(*args, **kwargs)
        return wrapper

    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "spawnv", "spawnve",
                 "spawnvp", "spawnvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe"):
        if hasattr(os, name):
            setattr(os, name, counted(getattr(os, name)))
    subprocess.Popen._execute_child = counted(subprocess.Popen._execute_child)

    def refuse(what):
        def wrapper(*args, **kwargs):
            raise PermissionError(f"sandbox: {what} is not allowed")
        return wrapper

    os.setsid = refuse("setsid")
    os.setpgid = refuse("setpgid")
    os.setpgrp = refuse("setpgrp")
    os.killpg = refuse("killpg")
    real_kill = os.kill

    def kill(pid, sig):
        if pid <= 0:
            raise PermissionError("sandbox: signalling process groups is not allowed")
        return real_kill(pid, sig)

    os.kill = kill

    class NoNetworkSocket(socket.socket):
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            if fileno is None and family != socket.AF_UNIX:
                raise PermissionError("sandbox: network access is disabled")
            super().__init__(family, type, proto, fileno)

    socket.socket = NoNetworkSocket
    socket.create_connection = refuse("network access")


def _sandbox_main(program, max_procs, counter):
    _sandbox_guard(max_procs, counter)
    sys.argv = [program]
    with open(program, encoding="utf-8") as fh:
        code = compile(fh.read(), program, "exec")
    exec(code, {"__name__": "__main__", "__file__": program, "__builtins__": __builtins__})


def _sandbox_init(program, max_procs, counter):
    """PID 1 of a new PID namespace ignores unhandled signals (CPU limit included): run the
    program in a child, reap orphans, and exit with the child's status (128 + signal)."""
    child = os.fork()
    if child == 0:
        _sandbox_main(program, max_procs, counter)
        return
    while True:
        pid, status = os.wait()
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


_args = (sys.argv[1], int(sys.argv[2]), sys.argv[3])
if os.getpid() == 1:
    _sandbox_init(*_args)
else:
    _sandbox_main(*_args)
'''


# --- what the machine offers ---------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _unshare_works() -> bool:
    exe = shutil.which("unshare")
    if exe is None:
        return False
    try:
        proc = subprocess.run([exe, "--pid", "--fork", "--kill-child", "--net", "true"],
                              capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def _own_cgroup(hierarchy: str) -> str | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (hierarchy == "v2" and controllers == "") or hierarchy in controllers.split(","):
            return path
    return None


@functools.lru_cache(maxsize=1)
def _pids_cgroup_base() -> Path | None:
    """A writable cgroup directory under which per-run ``pids`` cgroups can be made."""
    candidates = []
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").exists() and (own := _own_cgroup("pids")) is not None:
        candidates.append(v1 / own.lstrip("/"))
    if (own := _own_cgroup("v2")) is not None:
        base = Path("/sys/fs/cgroup") / own.lstrip("/")
        try:
            if "pids" in (base / "cgroup.subtree_control").read_text().split():
                candidates.append(base)
        except OSError:
            pass
    for base in candidates:
        probe = base / f"tide-sandbox-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir()
        except OSError:
            continue
        ok = (probe / "pids.max").exists()
        try:
            probe.rmdir()
        except OSError:
            pass
        if ok:
            return base
    return None


def isolation_report() -> dict[str, bool]:
    """Which containment layers this machine supports (rlimits and the prelude always apply)."""
    return {"pid_and_net_namespace": _unshare_works(),
            "pids_cgroup": _pids_cgroup_base() is not None}


def _user_process_count() -> int:
    uid, n = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                n += entry.stat().st_uid == uid
            except OSError:
                pass
    return n


# --- one run -----------------------------------------------------------------------------------
def _make_cgroup(max_procs: int) -> Path | None:
    base = _pids_cgroup_base()
    if base is None:
        return None
    path = base / f"tide-sandbox-{uuid.uuid4().hex}"
    try:
        path.mkdir()
        (path / "pids.max").write_text(str(max_procs))
    except OSError:
        _remove_cgroup(path)
        return None
    return path


def _cgroup_pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _kill_cgroup(path: Path) -> None:
    for _ in range(200):
        pids = _cgroup_pids(path)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)


def _remove_cgroup(path: Path) -> None:
    for _ in range(200):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # busy while the last members are being reaped
            time.sleep(0.005)


def _limits(timeout_s: float, memory_mb: int, max_procs: int, cgroup: Path | None,
            nproc: int):
    """The ``preexec_fn``: runs in the child between fork and exec."""
    cpu = math.ceil(timeout_s) + 1

    def apply() -> None:
        if cgroup is not None:
            try:
                (cgroup / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                pass
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_MB << 20, FILE_SIZE_MB << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        except (ValueError, OSError):
            pass

    return apply


def _read(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(MAX_OUTPUT_CHARS + 1)
    except OSError:
        return ""
    return text if len(text) <= MAX_OUTPUT_CHARS else text[:MAX_OUTPUT_CHARS] + "\n[truncated]"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _status(timed_out: bool, returncode: int, stderr: str, namespaced: bool) -> str:
    if timed_out:
        return "timeout"
    if returncode == 0:
        return "passed"
    sig = -returncode if returncode < 0 else (returncode - 128 if namespaced and
                                              returncode > 128 else None)
    if sig == signal.SIGXCPU:
        return "timeout"
    tail = stderr.strip().splitlines()[-1:] or [""]
    if sig is None and tail[0].startswith("AssertionError"):
        return "failed"
    return "error"


def run_program(source: str, *, timeout_s: float = 5.0, memory_mb: int = 512,
                max_procs: int = 64, isolation: str = "auto") -> ExecResult:
    """Run ``source`` as a Python program in the sandbox and report what happened.

    ``isolation="auto"`` uses every layer the machine supports; ``"basic"`` uses only the
    rlimits, the prelude and the process-group kill (what is left on machines without
    ``unshare`` or cgroups; the tests exercise both).
    """
    if isolation not in ("auto", "basic"):
        raise ValueError(f"isolation must be 'auto' or 'basic', not {isolation!r}")
    if timeout_s <= 0 or memory_mb <= 0 or max_procs <= 0:
        raise ValueError("timeout_s, memory_mb and max_procs must be positive")
    workdir = Path(tempfile.mkdtemp(prefix="tide-sandbox-"))
    namespaced = isolation == "auto" and _unshare_works()
    cgroup = _make_cgroup(max_procs) if isolation == "auto" else None
    start = time.perf_counter()
    try:
        (workdir / "program.py").write_text(source, encoding="utf-8")
        (workdir / "runner.py").write_text(_RUNNER, encoding="utf-8")
        (workdir / "forks").write_text("0")
        cmd = [sys.executable, "-I", "-B", str(workdir / "runner.py"),
               str(workdir / "program.py"), str(max_procs), str(workdir / "forks")]
        if namespaced:
            cmd = [shutil.which("unshare") or "unshare", "--pid", "--fork", "--kill-child",
                   "--net", *cmd]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8",
               "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        nproc = max_procs + (_user_process_count() if os.getuid() != 0 else 0)
        with open(workdir / "stdout", "wb") as out, open(workdir / "stderr", "wb") as err:
            proc = subprocess.Popen(
                cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                start_new_session=True,
                # limits must be set in the child itself; tide runs no threads around this call
                preexec_fn=_limits(timeout_s, memory_mb, max_procs, cgroup, nproc))  # noqa: PLW1509
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:  # nothing outlives the call: the whole group, then the cgroup
                _kill_group(proc.pid)
                if cgroup is not None:
                    _kill_cgroup(cgroup)
                proc.wait()
        duration = time.perf_counter() - start
        stdout, stderr = _read(workdir / "stdout"), _read(workdir / "stderr")
        status = _status(timed_out, proc.returncode, stderr, namespaced)
        return ExecResult(status, None if timed_out else proc.returncode, stdout, stderr,
                          duration)
    finally:
        if cgroup is not None:
            _remove_cgroup(cgroup)
        shutil.rmtree(workdir, ignore_errors=True)


def check_solution(program: str, test: str, entry_point: str | None = None,
                   **limits) -> ExecResult:
    """Run ``program``, then ``test``, then ``check(entry_point)`` (HumanEval-style tests define
    ``check(candidate)``; with ``entry_point=None`` the test code must call what it needs)."""
    source = f"{program}\n\n{test}\n"
    if entry_point is not None:
        if not entry_point.isidentifier():
            raise ValueError(f"entry_point must be a Python identifier, not {entry_point!r}")
        source += f"\ncheck({entry_point})\n"
    return run_program(source, **limits)
