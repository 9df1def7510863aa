"""``intake`` commands as their own processes, without paying the interpreter's start-up.

Starting ``python -m intake`` costs about 0.35 s of CPU before the command runs (the
interpreter, then cryptography, paramiko, structlog, ... and a dummy scrypt hash), and the
suite runs some 450 commands: half of all its CPU. A *forker* process, started once per
pytest process, imports the command once and forks a fresh child for every command. The
child is a real process of its own: its own pid, stdin/stdout/stderr (the caller's pipes,
passed over a Unix socket), working folder and environment (the caller's, at the call),
and its exit status; it runs ``intake.frontends.cli.main.main`` exactly as
``intake/__main__.py`` does, then the interpreter's exit functions.

Only ``TestInstance.cli`` goes through here. ``intake serve`` (``ServeProcess``) and the
tests that start ``python -m intake`` themselves still start the real interpreter, and so
does everything when ``INTAKE_TEST_EXEC=1``.
"""

from __future__ import annotations

import contextlib
import io
import json
import locale
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ENABLED = os.environ.get("INTAKE_TEST_EXEC") != "1"
_MAX_MESSAGE = 1 << 20


# --- the forker (its own process: python -m tests.forked_cli SOCKET) --------------------


def _command(request: dict[str, object], fds: list[int]) -> None:
    """In the forked child: become the command, run it, exit with its code."""
    os.dup2(fds[0], 0)
    os.dup2(fds[1], 1)
    os.dup2(fds[2], 2)
    for fd in fds:
        os.close(fd)
    os.chdir(str(request["cwd"]))
    os.environ.clear()
    os.environ.update(request["env"])  # type: ignore[arg-type]
    import time

    time.tzset()
    import atexit
    import traceback

    import intake
    from intake.frontends.cli.main import main

    argv = [str(a) for a in request["argv"]]  # type: ignore[attr-defined]
    sys.argv = [str(Path(intake.__file__).with_name("__main__.py")), *argv]  # as ``-m intake``
    code = 1
    try:
        code = main(argv)
    except SystemExit as exc:  # what ``raise SystemExit(main())`` does with the interpreter
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed pipe: nothing more to say
                stream.flush()
        os._exit(code)


def _handle(conn: socket.socket) -> None:
    """In the forker's child for one connection: fork the command, report pid and status."""
    message, fds, _, _ = socket.recv_fds(conn, _MAX_MESSAGE, 3)
    request = json.loads(message)
    pid = os.fork()
    if pid == 0:
        conn.close()
        _command(request, fds)
    for fd in fds:
        os.close(fd)
    conn.sendall(f"{pid}\n".encode())
    _, status = os.waitpid(pid, 0)
    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())


def _serve(path: str) -> None:
    # Import what every command imports, once. Nothing here may start a thread or open a
    # database: the children are forks of this process.
    import intake.frontends.cli.main  # noqa: F401

    assert threading.active_count() == 1
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the per-connection children reap nobody
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(128)
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([server, 0], [], [])
        if 0 in ready:  # end of stdin: the pytest process that started this one is gone
            return
        conn, _ = server.accept()
        if os.fork() == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # this child waits for its command
            server.close()
            try:
                _handle(conn)
            finally:
                os._exit(0)
        conn.close()


# --- the caller's side ------------------------------------------------------------------


class Forker:
    def __init__(self) -> None:
        self._folder = tempfile.mkdtemp(prefix="intake-forker-")
        self.path = os.path.join(self._folder, "socket")
        root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.forked_cli", self.path],
            stdin=subprocess.PIPE,  # never written: its end tells the forker to stop
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": path},
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError("the CLI forker did not start")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.kill()
        self.proc.wait(timeout=30)
        if os.path.exists(self.path):
            os.unlink(self.path)
        os.rmdir(self._folder)

    def run(
        self, argv: list[str], input: str | None, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Like ``subprocess.run([*INTAKE, *argv], input=input, capture_output=True,
        text=True, timeout=timeout)``."""
        encoding = locale.getpreferredencoding(False)
        stdin_r, stdin_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
            socket.send_fds(conn, [json.dumps(request).encode()], [stdin_r, out_w, err_w])
        finally:
            for fd in (stdin_r, out_w, err_w):
                os.close(fd)
        chunks: dict[int, bytes] = {}

        def drain(fd: int) -> None:
            with open(fd, "rb") as handle:
                chunks[fd] = handle.read()

        def feed() -> None:
            with contextlib.suppress(BrokenPipeError), open(stdin_w, "wb") as handle:
                if input:
                    handle.write(input.encode(encoding))

        threads = [threading.Thread(target=drain, args=(fd,)) for fd in (out_r, err_r)]
        threads.append(threading.Thread(target=feed))
        for thread in threads:
            thread.start()
        conn.settimeout(timeout)
        replies = conn.makefile("r")
        pid = int(replies.readline())
        try:
            code = int(replies.readline())
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            raise subprocess.TimeoutExpired(argv, timeout) from None
        finally:
            for thread in threads:
                thread.join(timeout)
            replies.close()
            conn.close()

        def text(data: bytes) -> str:  # what ``text=True`` gives: universal newlines
            return io.TextIOWrapper(io.BytesIO(data), encoding=encoding).read()

        return subprocess.CompletedProcess(
            argv, code, text(chunks.get(out_r, b"")), text(chunks.get(err_r, b""))
        )


_forker: Forker | None = None
_lock = threading.Lock()


def forker() -> Forker:
    """This process's forker, started at the first command."""
    global _forker
    with _lock:
        if _forker is None or _forker.proc.poll() is not None:
            _forker = Forker()
        return _forker


def stop() -> None:
    global _forker
    with _lock:
        if _forker is not None:
            _forker.close()
            _forker = None


if __name__ == "__main__":
    _serve(sys.argv[1])
