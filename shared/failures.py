"""How a consumer treats a failure: the one sorting policy of every subscriber kind.

A handler (or the gate before it) fails for one of three reasons, and each has one answer:

- ``DATA``: the message itself cannot be processed (the contract rejects it, a store refuses a
  value, a decimal overflows). Retrying cannot help: it goes to the DLQ at once, with a reason.
- ``OUTAGE``: something the message needs is down (broker, database, SMTP server, network).
  The message is fine: it is retried with capped backoff for as long as it takes, never
  skipped and never dead-lettered.
- ``UNKNOWN``: anything else (a bug, a race). Retried a bounded number of times with backoff,
  then dead-lettered with the exception as the reason, so one message cannot stop a consumer.

``classify`` is a small ordered list of rules; a service that knows better about an exception
of its own passes an extra ``Classifier`` to its ``EventConsumer``, consulted first.
"""

from __future__ import annotations

import decimal
import enum
import smtplib
import sqlite3
from collections.abc import Callable, Sequence

import aiokafka.errors
import aiosmtplib
import kafka.errors
from clickhouse_connect.driver import exceptions as clickhouse
from pydantic import ValidationError
from sqlalchemy import exc as sql

from shared.events import EventRejected
from shared.events.registry import describe_errors


class Failure(enum.Enum):
    """What a failure says about the message that caused it."""

    DATA = "data"
    OUTAGE = "outage"
    UNKNOWN = "unknown"


Classifier = Callable[[BaseException], Failure | None]
"""A service's own rule: the kind of a failure, or None to leave it to the platform's rules."""

_OUTAGES: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    OSError,  # sockets, DNS, a full disk: the environment, not the message
    sql.OperationalError,
    sql.InterfaceError,
    sql.DisconnectionError,
    sql.TimeoutError,  # connection pool exhausted
    clickhouse.OperationalError,
    clickhouse.StreamFailureError,
    aiokafka.errors.KafkaConnectionError,
    aiokafka.errors.KafkaTimeoutError,
    aiokafka.errors.NoBrokersAvailable,
    kafka.errors.KafkaConnectionError,
    kafka.errors.KafkaTimeoutError,
    smtplib.SMTPConnectError,
    smtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
)

_DATA: tuple[type[BaseException], ...] = (
    EventRejected,
    ValidationError,
    decimal.DecimalException,  # InvalidOperation, Overflow: "1E+400" and its kin
    sql.DataError,
    clickhouse.DataError,
    aiokafka.errors.MessageSizeTooLargeError,
    kafka.errors.MessageSizeTooLargeError,
    RecursionError,  # nesting deeper than any consumer walks
)

_UNIQUE_VIOLATION_SQLSTATE = "23505"


def classify(exc: BaseException, *, extra: Sequence[Classifier] = ()) -> Failure:
    """The kind of ``exc``: the service's rules first, then the platform's."""
    for rule in extra:
        kind = rule(exc)
        if kind is not None:
            return kind
    if isinstance(exc, _DATA):
        return Failure.DATA
    if isinstance(exc, sql.IntegrityError):
        # a duplicate key is a race another attempt resolves (the retry finds the claim); a
        # NOT NULL, CHECK or foreign-key violation is the message's own
        return Failure.UNKNOWN if _is_unique_violation(exc) else Failure.DATA
    if isinstance(exc, sql.DBAPIError) and exc.connection_invalidated:
        return Failure.OUTAGE
    if isinstance(exc, _OUTAGES):
        return Failure.OUTAGE
    if isinstance(exc, aiokafka.errors.KafkaError | kafka.errors.KafkaError):
        return Failure.OUTAGE if getattr(exc, "retriable", False) else Failure.UNKNOWN
    if isinstance(exc, clickhouse.DatabaseError) and _is_clickhouse_data_error(exc):
        return Failure.DATA
    return Failure.UNKNOWN


def reason_of(exc: BaseException) -> str:
    """A readable reason for the DLQ: the field-naming reason of a rejection, else the
    exception's type and message."""
    if isinstance(exc, EventRejected):
        return exc.reason
    if isinstance(exc, ValidationError):
        return describe_errors(exc, prefix="data")
    if isinstance(exc, sql.StatementError) and exc.orig is not None:
        return f"{type(exc).__name__}: {type(exc.orig).__name__}: {exc.orig}"
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _is_unique_violation(exc: sql.IntegrityError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _UNIQUE_VIOLATION_SQLSTATE:  # psycopg
        return True
    if isinstance(orig, sqlite3.IntegrityError):
        text = str(orig)
        return text.startswith(("UNIQUE constraint failed", "PRIMARY KEY must be unique"))
    return "duplicate" in str(orig).lower()


# ClickHouse error codes that mean "this value cannot be stored or parsed", not "try later"
# (ErrorCodes.cpp): CANNOT_PARSE_TEXT/DATE/DATETIME/NUMBER/UUID, TYPE_MISMATCH,
# ILLEGAL_TYPE_OF_ARGUMENT, ARGUMENT_OUT_OF_BOUND, CANNOT_CONVERT_TYPE, INCORRECT_DATA,
# TOO_LARGE_STRING_SIZE, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE, CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN,
# DECIMAL_OVERFLOW
_CLICKHOUSE_DATA_CODES = frozenset(
    {6, 27, 38, 41, 43, 53, 69, 70, 72, 117, 131, 321, 349, 376, 407}
)


def _is_clickhouse_data_error(exc: clickhouse.DatabaseError) -> bool:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code in _CLICKHOUSE_DATA_CODES
    text = str(exc)
    return any(f"Code: {number}." in text for number in _CLICKHOUSE_DATA_CODES)
