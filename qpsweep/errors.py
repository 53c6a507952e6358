"""Operator errors: things the person running qpsweep can fix.

Request failures are never exceptions; they are data in ``RequestRecord.error_kind``.
These exceptions cover bad input and an unusable environment, and ``cli.main`` alone
turns them into one line on stderr and exit code 2 (1 for ``WriteFailed``: the disk's
fault, not the input's)::

    QpsweepError
     ├── ConfigError    a flag or config value is invalid
     ├── DatasetError   a dataset file is missing, unreadable or malformed
     └── RunDirError    a results directory cannot be written, or is not a run directory
          └── WriteFailed   a run's file could not be written (a full disk, a size limit)
               └── RecordsLost   records could not be written during a run
"""

from __future__ import annotations


class QpsweepError(Exception):
    """Base of every operator error; ``str(err)`` is the one line shown to the user."""


class ConfigError(QpsweepError):
    """A command-line flag or configuration value is invalid."""


class DatasetError(QpsweepError):
    """A dataset file cannot be used; the message names the file, sample and field."""


class RunDirError(QpsweepError):
    """A results directory cannot be created or written, or is not a qpsweep run."""


class WriteFailed(RunDirError):
    """A file of a run (its metadata, records, results, report) could not be written while
    it ran or was rebuilt: a full disk, the file-size limit.  The message names the file."""


class RecordsLost(WriteFailed):
    """Records of a run could not be written (the sweep stopped); the message says how many
    and that what was written is readable."""
