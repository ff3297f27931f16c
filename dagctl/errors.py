"""Domain exceptions. Each carries the process exit code the CLI turns it into."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a run, a task or a validation failed
EXIT_USAGE = 2  # bad flags, bad params, unknown DAG or task
EXIT_DATABASE = 3  # state database unreachable or not migrated
EXIT_INTERRUPTED = 130  # stopped by SIGINT/SIGTERM before its work was done


class DagctlError(Exception):
    """An error a user can fix; the CLI prints it as one line, without a traceback."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(DagctlError):
    exit_code = EXIT_USAGE


class DagNotFound(UsageError):
    pass


class ParamError(UsageError):
    pass


class DatabaseError(DagctlError):
    """The state database cannot be reached, or its schema is not at the expected revision."""

    exit_code = EXIT_DATABASE


class TaskFailed(DagctlError):
    exit_code = EXIT_FAILED
