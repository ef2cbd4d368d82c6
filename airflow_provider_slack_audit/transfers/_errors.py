"""Which warehouse errors a retry can fix, and what to tell the user about the others.

Only a lost or refused connection, a lock, a deadlock and a timeout go away by themselves; every
other database error (a syntax error, a missing column, a value the column refuses, a constraint)
fails again on every retry, so the operator turns it into ``AirflowFailException``. DB-API drivers
put most errors in ``OperationalError`` (sqlite3 even "no such table", MySQLdb "unknown column"), so
the class alone does not tell; the SQLSTATE (PostgreSQL), the server error code (MySQL/MariaDB) or
the message (SQLite) does. Google's API errors (BigQuery) carry an HTTP status and a reason.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "InvalidTableNameError",
    "SchemaMismatchError",
    "UnsupportedDatabaseError",
    "error_summary",
    "is_transient",
    "missing_provider_hint",
    "sqlstate",
]


class InvalidTableNameError(ValueError):
    """The table or schema name is not a plain SQL identifier."""


class SchemaMismatchError(ValueError):
    """The existing table lacks columns the load writes, or a primary key on ``id``."""


class UnsupportedDatabaseError(ValueError):
    """No upsert is known for the connection's database."""


# PostgreSQL SQLSTATE classes and codes a retry can fix: connection exceptions (08), transaction
# rollbacks such as deadlocks and serialization failures (40), insufficient resources (53),
# operator intervention such as a statement timeout or a restart (57), lock not available.
_PG_TRANSIENT_CLASSES: Final = ("08", "40", "53", "57")
_PG_TRANSIENT_CODES: Final = frozenset({"55P03"})
# MySQL/MariaDB: too many connections, server gone away / lost, can't connect, lock wait timeout,
# deadlock, max_statement_time / max_execution_time exceeded, server shutting down.
_MYSQL_TRANSIENT_CODES: Final = frozenset(
    {1040, 1053, 1205, 1213, 1317, 1969, 2002, 2003, 2005, 2006, 2013, 2055, 3024, 4031}
)
_SQLITE_TRANSIENT_WORDS: Final = ("database is locked", "database table is locked", "busy")
# Driver-agnostic class names of "the connection is not usable" (DB-API's InterfaceError).
_CONNECTION_CLASS_NAMES: Final = frozenset({"InterfaceError", "ConnectionError", "OperationalError"})


def is_transient(error: BaseException) -> bool:
    """Whether retrying the load can succeed: connection, lock and timeout errors only."""
    error = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error in .orig
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    package = type(error).__module__.split(".")[0]
    if package == "google":
        return _google_transient(error)
    if package in ("snowflake", "requests", "urllib3"):
        return _warehouse_service_transient(error)
    state = sqlstate(error)
    if isinstance(state, str) and len(state) == 5 and type(error).__module__.startswith("psycopg"):
        return state[:2] in _PG_TRANSIENT_CLASSES or state in _PG_TRANSIENT_CODES
    module = type(error).__module__
    if module.startswith("sqlite3"):
        return type(error).__name__ == "OperationalError" and any(
            word in str(error).lower() for word in _SQLITE_TRANSIENT_WORDS
        )
    code = _mysql_error_code(error)
    if code is not None:
        return code in _MYSQL_TRANSIENT_CODES
    # A driver error without a code (e.g. psycopg's "connection failed" before any SQLSTATE).
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & _CONNECTION_CLASS_NAMES) and module.split(".")[0] in _DRIVERS_WITHOUT_CODES


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a psycopg 3 (``sqlstate``) or psycopg2 (``pgcode``) error, else ``None``."""
    return getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)


# Snowflake: statement/warehouse timeout or cancel (604, 630), lock waiters exceeded (625), session
# token expired (390114), and the connector's connection-level codes (2500xx, 2530xx).
_SNOWFLAKE_TRANSIENT_ERRNOS: Final = frozenset({604, 625, 630, 390114})
_SNOWFLAKE_TRANSIENT_CLASSES: Final = frozenset(
    {
        "OperationalError",
        "InterfaceError",
        "ServiceUnavailableError",
        "GatewayTimeoutError",
        "BadGatewayError",
        "RequestTimeoutError",
        "OtherHTTPRetryableError",
        "InternalServerError",
    }
)


def _warehouse_service_transient(error: BaseException) -> bool:
    """Snowflake's connector (and the requests/urllib3 beneath it): whether the error is retryable."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & _HTTP_CONNECTION_CLASSES:  # requests/urllib3: the connection was lost or timed out
        return True
    if type(error).__module__.startswith("snowflake"):
        errno = getattr(error, "errno", None)
        if isinstance(errno, int) and (errno in _SNOWFLAKE_TRANSIENT_ERRNOS or 250000 <= errno < 260000):
            return True
        return bool(names & _SNOWFLAKE_TRANSIENT_CLASSES) and "ProgrammingError" not in names
    return False


# requests' and urllib3's "no answer" errors (Google's and Snowflake's clients talk through them).
_HTTP_CONNECTION_CLASSES: Final = frozenset(
    {
        "ConnectionError",
        "Timeout",
        "ProtocolError",
        "NewConnectionError",
        "MaxRetryError",
        "ChunkedEncodingError",
    }
)
# BigQuery's error reasons a retry can fix (a quota refills, a backend recovers); a 5xx or 429 is too.
# accessDenied (403), notFound (404), invalid/invalidQuery (400) and the others fail every time.
_GOOGLE_TRANSIENT_REASONS: Final = frozenset(
    {"rateLimitExceeded", "backendError", "internalError", "jobRateLimitExceeded", "jobBackendError"}
)


def _google_transient(error: BaseException) -> bool:
    """A Google API error (google.api_core, google.auth): whether retrying can succeed."""
    if type(error).__name__ in ("TransportError", "RetryError"):  # google.auth / api_core: no answer
        return True
    reasons = {
        str(item.get("reason")) for item in getattr(error, "errors", None) or () if isinstance(item, dict)
    }
    if reasons & _GOOGLE_TRANSIENT_REASONS:
        return True
    if "due to concurrent update" in str(error):  # two DML statements met on one table: retry serializes
        return True
    code = getattr(error, "code", None)
    return isinstance(code, int) and (code >= 500 or code == 429)


# Drivers whose connection-level errors carry no code: their OperationalError/InterfaceError is one.
_DRIVERS_WITHOUT_CODES: Final = frozenset({"psycopg", "psycopg2", "MySQLdb", "mysql", "pymysql"})


def _mysql_error_code(error: BaseException) -> int | None:
    """The server/client error number of a MySQLdb, PyMySQL or mysql-connector error."""
    if type(error).__module__.split(".")[0] not in ("MySQLdb", "pymysql", "mysql", "_mysql_connector"):
        return None
    errno = getattr(error, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return errno
    if error.args and isinstance(error.args[0], int):
        return error.args[0]
    return None


def error_summary(error: BaseException) -> str:
    """The database's error without the audit data some messages quote.

    SQLAlchemy's wrapper quotes the statement's parameters, and PostgreSQL's DETAIL the failing
    row ("Failing row contains (...)"): both are audit data, which stays out of task logs. The
    driver's error class, SQLSTATE/code and primary message say what went wrong.
    """
    cause = getattr(error, "orig", None) or error
    diag = getattr(cause, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if primary:
        code = getattr(diag, "sqlstate", None)
        return f"{type(cause).__name__} ({code}): {primary}" if code else f"{type(cause).__name__}: {primary}"
    text = str(cause)
    return f"{type(cause).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


#: The extra of this provider that installs each first-class database's Airflow provider and driver.
_EXTRAS: Final = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "snowflake": "snowflake",
    "google_cloud_platform": "google",
}


def missing_provider_hint(conn_type: str) -> str:
    """What to install so Airflow knows a hook for ``conn_type``."""
    extra = _EXTRAS.get(conn_type)
    if extra:
        return f"pip install 'airflow-provider-slack-audit[{extra}]'"
    provider = f"apache-airflow-providers-{conn_type.replace('_', '-')}"
    return f"pip install {provider} (the Airflow provider of {conn_type!r} connections)"
