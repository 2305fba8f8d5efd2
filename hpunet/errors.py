# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The errors a command reports in one line, and the commands' exit codes.

Exit codes:
- 0: finished.
- 1: an unexpected error (a bug); the full traceback is printed.
- 2: bad input (`UserError`: a flag, a config field, a path, an image);
  nothing was written.
- 3: training stopped on a non-finite loss; the last good checkpoint is
  intact.
- 4: a checkpoint could not be written (`CheckpointSaveError`, e.g. a full
  disk); the previous one is intact.
- 75 (`PREEMPTED`): SIGTERM or Ctrl-C; a checkpoint was saved, rerun the
  same command to resume.
- 130: a second Ctrl-C; stopped at once, without a new checkpoint.

Plain Python.
"""

OK = 0
BUG = 1
USER_ERROR = 2
NON_FINITE = 3
SAVE_FAILED = 4
PREEMPTED = 75  # EX_TEMPFAIL of sysexits.h: "try again later".
INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C.


class UserError(ValueError):
  """Bad input, reported as one line without a traceback (exit code 2).

  A ValueError, so that library callers catching ValueError keep working.
  """

  exit_code = USER_ERROR


class CheckpointSaveError(OSError):
  """A checkpoint could not be written (exit code 4)."""

  exit_code = SAVE_FAILED
