"""The lake's exceptions, on the billing core's tree::

RecoupError
└── LakeError               the lake export cannot go on
    ├── LakeBusy            another export holds the lake's lock
    └── LakeAhead           the lake directory is ahead of the database it is exported from
"""

from __future__ import annotations

from pathlib import Path

from billing_core.errors import RecoupError


class LakeError(RecoupError):
    """The lake export cannot go on."""

    code = "lake_error"


class LakeBusy(LakeError):
    """Another export of the same lake directory is running."""

    code = "lake_busy"

    def __init__(self, lake_dir: Path) -> None:
        super().__init__(
            f"another export of the lake at {lake_dir} is running; wait for it to finish and run again"
        )


class LakeAhead(LakeError):
    """The lake directory is ahead of the database: another database, or one restored from a backup."""

    code = "lake_ahead"

    def __init__(self, lake: str, database: str) -> None:
        super().__init__(
            f"the lake directory holds {lake} but the database knows only {database}; it was exported"
            " from another database (or this one was restored from a backup): export into an empty lake"
            " directory to start again"
        )
