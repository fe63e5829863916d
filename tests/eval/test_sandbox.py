"""The code sandbox: statuses, wall-clock timeout, fork bombs, memory, network, stray processes."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from tide.eval.sandbox import ExecResult, check_solution, isolation_report, run_program

ISOLATIONS = ["auto", "basic"]


def _alive_sandbox_processes(pids: list[int]) -> list[int]:
    """Those of ``pids`` that still run a sandbox runner (pid reuse by other programs ignored)."""
    alive = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"runner.py" in cmdline and state != "Z":
            alive.append(pid)
    return alive


def _recorded(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_passing_failing_and_broken_programs():
    ok = run_program("print('hello')")
    assert isinstance(ok, ExecResult)
    assert (ok.status, ok.returncode, ok.stdout) == ("passed", 0, "hello\n")
    bad = run_program("assert 1 + 1 == 3, 'arithmetic'")
    assert bad.status == "failed" and bad.returncode == 1 and "AssertionError" in bad.stderr
    broken = run_program("def f(:\n    pass")
    assert broken.status == "error" and "SyntaxError" in broken.stderr
    crash = run_program("raise KeyError('x')")
    assert crash.status == "error" and "KeyError" in crash.stderr


def test_check_solution_runs_program_test_and_check():
    test = "def check(candidate):\n    assert candidate(2) == 5\n    assert candidate(0) == 3\n"
    good = check_solution("def add_3(x):\n    return x + 3\n", test, "add_3")
    assert good.status == "passed", good.stderr
    wrong = check_solution("def add_3(x):\n    return x + 4\n", test, "add_3")
    assert wrong.status == "failed"
    missing = check_solution("def add_4(x):\n    return x + 4\n", test, "add_3")
    assert missing.status == "error" and "NameError" in missing.stderr
    with pytest.raises(ValueError, match="identifier"):
        check_solution("", test, "add_3); import os; (")


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("source", ["while True:\n    pass", "import time\ntime.sleep(60)"])
def test_endless_programs_time_out(isolation, source):
    start = time.perf_counter()
    res = run_program(source, timeout_s=1.5, isolation=isolation)
    elapsed = time.perf_counter() - start
    assert res.status == "timeout"
    assert res.returncode is None
    assert 1.4 <= elapsed < 1.5 + 2.0
    assert res.duration_s < 1.5 + 2.0


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_cpu_limit_signal_counts_as_timeout(isolation):
    # RLIMIT_CPU ends a process with SIGXCPU; the status must say timeout, in both modes
    res = run_program("import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)",
                      isolation=isolation)
    assert res.status == "timeout" and res.returncode != 0
    killed = run_program("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)",
                         isolation=isolation)
    assert killed.status == "error"


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_fork_bomb_is_contained(isolation, tmp_path):
    log = tmp_path / "pids.txt"
    bomb = (f"import os, time\nlog = {str(log)!r}\n"
            "def note():\n    with open(log, 'a') as fh:\n"
            "        fh.write(os.readlink('/proc/self') + '\\n')\n"
            "note()\nwhile True:\n    try:\n        if os.fork() == 0:\n            note()\n"
            "    except OSError:\n        time.sleep(0.05)\n")
    start = time.perf_counter()
    res = run_program(bomb, timeout_s=2.0, max_procs=16, isolation=isolation)
    assert time.perf_counter() - start < 2.0 + 2.0
    assert res.status == "timeout"  # the bomb keeps retrying until the deadline
    pids = _recorded(log)
    assert 1 < len(pids) <= 16 + 1  # forks were capped (main process + max_procs children)
    time.sleep(0.2)
    assert _alive_sandbox_processes(pids) == []


def test_fork_bomb_bypassing_python_is_capped_by_the_kernel(tmp_path):
    if not isolation_report()["pids_cgroup"]:
        pytest.skip("no writable pids cgroup on this machine")
    log = tmp_path / "pids.txt"
    bomb = (f"import ctypes, os, time\nlibc = ctypes.CDLL(None)\nlog = {str(log)!r}\n"
            "open(log, 'a').write(os.readlink('/proc/self') + '\\n')\n"
            "while True:\n    pid = libc.fork()\n    if pid == 0:\n"
            "        open(log, 'a').write(os.readlink('/proc/self') + '\\n')\n"
            "    elif pid < 0:\n        time.sleep(0.05)\n")
    res = run_program(bomb, timeout_s=1.5, max_procs=16)
    assert res.status == "timeout"
    pids = _recorded(log)
    assert 1 < len(pids) <= 16
    time.sleep(0.2)
    assert _alive_sandbox_processes(pids) == []


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_background_children_do_not_outlive_the_call(isolation, tmp_path):
    log = tmp_path / "pids.txt"
    src = (f"import os, time\nif os.fork() == 0:\n"
           f"    open({str(log)!r}, 'w').write(os.readlink('/proc/self'))\n"
           "    time.sleep(60)\nelse:\n    time.sleep(0.3)\n    print('parent done')\n")
    res = run_program(src, timeout_s=5.0, isolation=isolation)
    assert res.status == "passed" and res.stdout == "parent done\n"
    assert res.duration_s < 3.0  # the call returned when the program did, not after the child
    time.sleep(0.2)
    assert _recorded(log) and _alive_sandbox_processes(_recorded(log)) == []


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_huge_allocation_fails_cleanly(isolation):
    res = run_program("x = bytearray(8 * 1024 ** 3)\nprint('allocated')", memory_mb=256,
                      isolation=isolation)
    assert res.status == "error" and "MemoryError" in res.stderr and "allocated" not in res.stdout
    small = run_program("x = bytearray(16 * 1024 ** 2)\nprint(len(x))", memory_mb=256,
                        isolation=isolation)
    assert small.status == "passed" and small.stdout.strip() == str(16 * 1024 ** 2)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_network_is_disabled(isolation):
    src = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
           "except OSError as err:\n    print('blocked', type(err).__name__)\n")
    res = run_program(src, isolation=isolation)
    assert res.status == "passed" and res.stdout.startswith("blocked")
    raw = run_program("import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)",
                      isolation=isolation)
    assert raw.status == "error" and "network" in raw.stderr


def test_escaping_the_process_group_is_refused():
    res = run_program("import os\nos.setsid()")
    assert res.status == "error" and "setsid" in res.stderr
    res = run_program("import os, signal\nos.kill(-1, signal.SIGTERM)")
    assert res.status == "error" and "process groups" in res.stderr


def test_output_is_truncated_and_runs_leave_no_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where run_program makes its dir
    res = run_program("print('x' * 100000)\nopen('left.txt', 'w').write('x')")
    assert res.status == "passed" and len(res.stdout) < 11000 and "truncated" in res.stdout
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="isolation"):
        run_program("pass", isolation="none")
    with pytest.raises(ValueError, match="positive"):
        run_program("pass", timeout_s=0)
