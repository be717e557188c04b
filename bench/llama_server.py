"""llama.cpp's own ``llama-server``, built once from the llama.cpp that llama-cpp-python vendors.

The baseline must run the same llama.cpp as our agents, so it is built from the sdist of the
installed llama-cpp-python version (``pip download --no-binary :all:``), with the same ggml
defaults as that package's build (native CPU flags), and cached under
``platformdirs.user_cache_dir("paddler-tui")/llama-server/<version>/``. Later runs reuse it.

``python -m bench.llama_server`` builds it (if needed) and prints its path;
``--llama-cpp-python-version V`` builds V's server without that version being installed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from tests.support.ports import free_port

DISTRIBUTION = "llama-cpp-python"
BINARY = "llama-server"
# LLAMA_CURL is gone from this llama.cpp (deprecated, ignored); OpenSSL is the HTTPS switch now.
# The web UI would be fetched from a Hugging Face bucket: nothing here may need the network.
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)
HEALTH_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
START_ATTEMPTS = 3


def installed_version() -> str:
    return importlib.metadata.version(DISTRIBUTION)


def cache_dir(version: str) -> Path:
    return Path(platformdirs.user_cache_dir("paddler-tui")) / "llama-server" / version


def build_info(version: str | None = None) -> dict[str, object] | None:
    """What :func:`build` recorded (commands, seconds), or None before the first build."""
    path = cache_dir(version or installed_version()) / "build.json"
    info: dict[str, object] | None = json.loads(path.read_text()) if path.is_file() else None
    return info


def _run(command: Sequence[str], log: Path, cwd: Path | None = None) -> None:
    print(f"  $ {' '.join(command)}", file=sys.stderr, flush=True)
    with log.open("ab") as out:
        done = subprocess.run(command, check=False, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{tail}")


def build(version: str | None = None) -> Path:
    """The cached ``llama-server`` of ``version`` (default: installed), built if missing."""
    version = version or installed_version()
    directory = cache_dir(version)
    binary = directory / BINARY
    if binary.is_file():
        return binary
    directory.mkdir(parents=True, exist_ok=True)
    # As ``nproc``: the CPUs this process may run on.
    jobs = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    started = time.monotonic()
    print(f"building {BINARY} from {DISTRIBUTION} {version} (minutes)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="llama-server-build-") as temporary:
        work = Path(temporary)
        log = directory / "build.log"
        log.write_text("")
        # Only this one from source: ``:all:`` would build every build dependency from source.
        download = [
            sys.executable, "-m", "pip", "download", "--no-binary", DISTRIBUTION, "--no-deps",
            "--dest", str(work), f"{DISTRIBUTION}=={version}",
        ]  # fmt: skip
        _run(download, log)
        (archive,) = work.glob("*.tar.gz")  # --no-deps: the one sdist
        with tarfile.open(archive) as sdist:
            sdist.extractall(work, filter="data")
        (source,) = (path for path in work.iterdir() if path.is_dir())
        configure = [
            "cmake", "-S", str(source / "vendor" / "llama.cpp"), "-B", str(work / "build"),
            *CMAKE_OPTIONS,
        ]  # fmt: skip
        compile_ = ["cmake", "--build", str(work / "build"), "--target", BINARY, "-j", jobs]
        _run(configure, log)
        _run(compile_, log)
        # Copied under a temporary name and renamed, so a half-copied binary is never reused.
        partial = directory / f".{BINARY}.partial"
        shutil.copy2(work / "build" / "bin" / BINARY, partial)
        seconds = time.monotonic() - started
        info = {
            "llama_cpp_python": version,
            "download": download[2:],
            "configure": configure,
            "build": compile_,
            "seconds": round(seconds, 1),
        }
        (directory / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        partial.rename(binary)
    print(f"built {binary} in {seconds:.0f} s", file=sys.stderr)
    return binary


@dataclass(frozen=True)
class LlamaServer:
    process: subprocess.Popen[bytes]
    port: int
    command: tuple[str, ...]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def server_args(
    model: str,
    *,
    slots: int = 4,
    threads: int = 2,
    context_size: int = 2048,
    cache_type: str = "f16",
    no_repack: bool = False,
) -> list[str]:
    args = [
        *("-m", model, "-np", str(slots), "-t", str(threads), "-c", str(context_size)),
        *("--cache-type-k", cache_type, "--cache-type-v", cache_type),
    ]
    return [*args, "--no-repack"] if no_repack else args


def _stop(process: subprocess.Popen[bytes]) -> None:
    """By pid: SIGTERM, then SIGKILL after the grace."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def _healthy(url: str, process: subprocess.Popen[bytes]) -> bool:
    """Until ``GET /health`` answers 200 (True), or the process exits (False)."""
    import httpx

    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{url}/health").status_code == 200:
                    return True
            time.sleep(0.1)
    raise RuntimeError(f"llama-server at {url} was not healthy after {HEALTH_TIMEOUT_S:.0f} s")


@contextlib.contextmanager
def llama_server(
    args: Sequence[str], *, log: Path, binary: Path | None = None
) -> Iterator[LlamaServer]:
    """``llama-server ARGS`` on 127.0.0.1, healthy, stopped by its pid on exit."""
    executable = binary or build()
    for _ in range(START_ATTEMPTS):
        port = free_port()
        command = (str(executable), *args, "--host", "127.0.0.1", "--port", str(port))
        with log.open("ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        server = LlamaServer(process, port, command, log)
        try:
            if _healthy(server.url, process):
                yield server
                return
        finally:
            _stop(process)
        # It exited before it was healthy: maybe the port was taken meanwhile; try another.
    raise RuntimeError(f"llama-server did not start:\n{log.read_text(errors='replace')[-4000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--llama-cpp-python-version", default=None, help="default: installed")
    args = parser.parse_args(argv)
    print(build(args.llama_cpp_python_version))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
