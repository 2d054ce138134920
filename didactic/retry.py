"""Retrying transient I/O (a flaky network disk) with exponential backoff and jitter.

Only errors that can pass on are retried: EIO, EAGAIN, ETIMEDOUT, ESTALE, EINTR, EBUSY and
connection resets. A full disk, a read-only file system, a missing file or a permission error
fails at once, and so does anything that is not an ``OSError`` (bad audio, bad config).
Retries are counted per process so the manifest can show them.
"""

from __future__ import annotations

import errno
import logging

from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

log = logging.getLogger(__name__)

TRANSIENT_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.EAGAIN,
        errno.ETIMEDOUT,
        errno.ESTALE,
        errno.EINTR,
        errno.EBUSY,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EREMOTEIO,
    }
)
ATTEMPTS = 5

_count = 0


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


def retries() -> int:
    """Retries made in this process since the last :func:`reset`."""
    return _count


def reset() -> None:
    global _count
    _count = 0


def _before_sleep(state: RetryCallState) -> None:
    global _count
    _count += 1
    exc = state.outcome.exception() if state.outcome else None
    log.warning("transient I/O error (%s); retry %d of %d", exc, state.attempt_number, ATTEMPTS - 1)


io_retry = retry(
    retry=retry_if_exception(is_transient),
    stop=stop_after_attempt(ATTEMPTS),
    wait=wait_exponential_jitter(initial=0.05, max=2.0),
    before_sleep=_before_sleep,
    reraise=True,
)
