"""The warehouse emulators the Snowflake and BigQuery load tests run against, each in its own process.

- Snowflake: ``fakesnow``'s server (DuckDB behind Snowflake's REST protocol), served over TLS on
  127.0.0.1 with a throwaway certificate, so the Snowflake provider's hook reaches it exactly as it
  reaches Snowflake: a ``snowflake`` connection whose extras set ``host`` and ``port`` (the hook
  has no way to ask for plain http), the certificate trusted through ``REQUESTS_CA_BUNDLE``.
- BigQuery: ``local-bigquery``'s server (BigQuery's REST API on DuckDB) over plain http on
  127.0.0.1, reached by the Google provider's BigQueryHook through an anonymous
  ``google_cloud_platform`` connection and ``BIGQUERY_EMULATOR_HOST``.

Each starts on a free loopback port and is stopped by the fixture that started it.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
SNOWFLAKE_DATABASE = "SLACK_AUDIT"
SNOWFLAKE_SCHEMA = "PUBLIC"


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 90
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


@contextmanager
def _process(command: list[str], log: Path, port: int, what: str) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, log, what)
        yield
    finally:
        stop_process(process, grace=5)


def stop_process(process: subprocess.Popen[bytes], *, grace: float) -> None:
    """SIGTERM, then SIGKILL when it is still running after ``grace`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 valid for a day, and its key (PEM files in ``directory``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@dataclass(frozen=True)
class SnowflakeEmulator:
    port: int
    ca_bundle: Path

    def connection(self, **extra: Any) -> dict[str, Any]:
        """An Airflow ``snowflake`` connection (as an ``AIRFLOW_CONN_<ID>`` JSON dict) to the emulator."""
        return {
            "conn_type": "snowflake",
            "login": "fake",
            "password": "snow",
            "schema": SNOWFLAKE_SCHEMA,
            "extra": {
                "account": "fakesnow",
                "database": SNOWFLAKE_DATABASE,
                "warehouse": "compute_wh",
                "host": "127.0.0.1",
                "port": self.port,
                "insecure_mode": True,  # no OCSP: the throwaway certificate has no responder
                "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
                **extra,
            },
        }

    def env(self, conn_id: str) -> dict[str, str]:
        """Environment variables reaching the emulator through connection ``conn_id``."""
        return {
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.connection()),
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
        }

    def connect(self) -> Any:
        """A plain Snowflake connector connection (the tests' own view of the tables)."""
        import snowflake.connector

        os.environ["REQUESTS_CA_BUNDLE"] = str(self.ca_bundle)
        return snowflake.connector.connect(
            user="fake",
            password="snow",
            account="fakesnow",
            host="127.0.0.1",
            port=self.port,
            insecure_mode=True,
            database=SNOWFLAKE_DATABASE,
            schema=SNOWFLAKE_SCHEMA,
            session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        )


@contextmanager
def snowflake_emulator(directory: Path) -> Iterator[SnowflakeEmulator]:
    """fakesnow's server over TLS on 127.0.0.1, with the test database and schema created."""
    cert_file, key_file = _self_signed_certificate(directory)
    port = free_loopback_port()
    serve = (
        "import sys, uvicorn, fakesnow.server; "
        "uvicorn.run(fakesnow.server.app, host='127.0.0.1', port=int(sys.argv[1]), "
        "ssl_certfile=sys.argv[2], ssl_keyfile=sys.argv[3], log_level='warning')"
    )
    command = [sys.executable, "-c", serve, str(port), str(cert_file), str(key_file)]
    with _process(command, directory / "fakesnow.log", port, "fakesnow"):
        emulator = SnowflakeEmulator(port, cert_file)
        connection = emulator.connect()
        try:
            cursor = connection.cursor()
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS {SNOWFLAKE_DATABASE}")
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SNOWFLAKE_DATABASE}.{SNOWFLAKE_SCHEMA}")
        finally:
            connection.close()
        yield emulator


# BigQuery: local-bigquery (PyPI), a BigQuery REST emulator on DuckDB. It needs Python >= 3.13, so it
# runs from its own virtualenv under .ci-tools/, installed by the first test that needs it. Pinned:
# 0.4 wants DuckDB 2.0, whose extensions no package registry ships; 0.3.2 runs on DuckDB 1.5.5, and
# the DuckDB extensions it loads at start (ducklake, icu, spatial) come as PyPI wheels of that
# version, copied into the server's own extension directory (DuckDB would download them otherwise).
BIGQUERY_PROJECT = "slack-audit-local"
LOCAL_BIGQUERY_VENV = REPO / ".ci-tools" / "local-bigquery"
_DUCKDB_VERSION = "1.5.5"
_DUCKDB_EXTENSIONS = ("ducklake", "icu", "spatial")
LOCAL_BIGQUERY_REQUIREMENTS = (
    "local-bigquery==0.3.2",
    f"duckdb=={_DUCKDB_VERSION}",
    *(f"duckdb-extension-{name}=={_DUCKDB_VERSION}" for name in _DUCKDB_EXTENSIONS),
)


def python_313() -> str | None:
    """A Python >= 3.13 interpreter: $SLACK_AUDIT_PYTHON313, python3.13 on PATH, or pyenv's."""
    import glob
    import shutil

    candidates = [os.environ.get("SLACK_AUDIT_PYTHON313")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[3-5]*/bin/python")))
    candidates += [shutil.which(name) for name in ("python3.13", "python3.14")]
    check = "import sys; sys.exit(sys.version_info < (3, 13))"
    for path in candidates:
        if path and subprocess.run([path, "-c", check], capture_output=True, timeout=60).returncode == 0:
            return path
    return None


# No registry this project installs from (PyPI, Debian 12's packages, npm) has a Python 3.13, and a
# fresh Debian 12 has 3.11 only: the BigQuery tests skip there, even in CI, and `make test-bigquery`
# (a CI stage on a machine with one) sets this variable to make a missing interpreter a failure.
REQUIRE_BIGQUERY = "SLACK_AUDIT_REQUIRE_BIGQUERY"
PYTHON_313_MISSING = (
    "local-bigquery (the BigQuery tests' emulator) needs Python >= 3.13 and none was found: install "
    "Python 3.13 (pyenv, or python3.13 on PATH) or set SLACK_AUDIT_PYTHON313 to its interpreter"
)


def python_313_or_skip() -> str:
    """The interpreter for local-bigquery; without one the test skips, or fails when
    ``SLACK_AUDIT_REQUIRE_BIGQUERY=1`` (``CI`` alone does not make it a failure)."""
    import pytest

    python = python_313()
    if python is None:
        if os.environ.get(REQUIRE_BIGQUERY) == "1":
            pytest.fail(f"{PYTHON_313_MISSING} ({REQUIRE_BIGQUERY}=1)")
        pytest.skip(PYTHON_313_MISSING)
    return python


def ensure_local_bigquery() -> Path:
    """The local-bigquery executable, installed from PyPI into its own venv when missing.

    pytest-xdist workers may ask at once: the first installs under an exclusive lock, the others wait.
    """
    import fcntl

    executable = LOCAL_BIGQUERY_VENV / "bin" / "local-bigquery"
    marker = LOCAL_BIGQUERY_VENV / "requirements.txt"
    wanted = "\n".join(LOCAL_BIGQUERY_REQUIREMENTS)
    LOCAL_BIGQUERY_VENV.parent.mkdir(parents=True, exist_ok=True)
    with (LOCAL_BIGQUERY_VENV.parent / "local-bigquery.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if executable.exists() and marker.exists() and marker.read_text() == wanted:
            return executable
        python = python_313()
        if python is None:
            raise FileNotFoundError(PYTHON_313_MISSING)
        subprocess.run([python, "-m", "venv", "--clear", str(LOCAL_BIGQUERY_VENV)], check=True, timeout=300)
        pip = [str(LOCAL_BIGQUERY_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run(
            [*pip, "--disable-pip-version-check", *LOCAL_BIGQUERY_REQUIREMENTS], check=True, timeout=900
        )
        marker.write_text(wanted)
        return executable


def _duckdb_home(directory: Path) -> Path:
    """A HOME whose ~/.duckdb/extensions holds the extensions the server loads (from their wheels)."""
    home = directory / "home"
    target = home / ".duckdb" / "extensions" / f"v{_DUCKDB_VERSION}" / "linux_amd64"
    target.mkdir(parents=True, exist_ok=True)
    site = next((LOCAL_BIGQUERY_VENV / "lib").glob("python3.*/site-packages"))
    for name in _DUCKDB_EXTENSIONS:
        source = (
            site
            / f"duckdb_extension_{name}"
            / "extensions"
            / f"v{_DUCKDB_VERSION}"
            / f"{name}.duckdb_extension"
        )
        (target / source.name).write_bytes(source.read_bytes())
    return home


@dataclass(frozen=True)
class BigQueryEmulator:
    url: str

    def connection(self, **extra: Any) -> dict[str, Any]:
        """An Airflow ``google_cloud_platform`` connection (anonymous: the emulator checks no credentials)."""
        return {
            "conn_type": "google_cloud_platform",
            "extra": {"project": BIGQUERY_PROJECT, "is_anonymous": True, **extra},
        }

    def env(self, conn_id: str) -> dict[str, str]:
        """Environment variables reaching the emulator through connection ``conn_id``.

        The Google provider's BigQueryHook builds google-cloud-bigquery's client, whose endpoint
        ``BIGQUERY_EMULATOR_HOST`` overrides (the library's own switch for emulators).
        """
        return {
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.connection()),
            "BIGQUERY_EMULATOR_HOST": self.url,
        }

    def client(self) -> Any:
        """A google-cloud-bigquery client of the emulator (the tests' own view of the tables)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=BIGQUERY_PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )


@contextmanager
def bigquery_emulator(directory: Path) -> Iterator[BigQueryEmulator]:
    """local-bigquery on 127.0.0.1 (REST and gRPC ports free ones), its data in ``directory``."""
    executable = ensure_local_bigquery()
    port, grpc_port = free_loopback_port(), free_loopback_port()
    command = [
        str(executable), "--host", LOOPBACK, "--port", str(port), "--grpc-port", str(grpc_port),
        "--data-dir", str(directory / "data"), "--project", BIGQUERY_PROJECT,
    ]  # fmt: skip
    env = {**os.environ, "HOME": str(_duckdb_home(directory))}
    log = directory / "local-bigquery.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for_port(port, process, log, "local-bigquery")
        yield BigQueryEmulator(f"http://{LOOPBACK}:{port}")
    finally:
        stop_process(process, grace=5)
