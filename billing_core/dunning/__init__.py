"""The dunning engine: collections for failed payments and overdue invoices.

* :mod:`billing_core.dunning.lifecycle`: the process's lifecycle as a table, its actions
  (retry, remind, final notice, suspend, write off), channels and outcomes;
* :mod:`billing_core.dunning.policy`: the :class:`DunningPolicy` interface (batch-shaped, for a
  model behind a prediction API) and the configurable :class:`StaticPolicy`;
* :mod:`billing_core.dunning.engine`: the set-based reads, planning and writes;
* :mod:`billing_core.dunning.reporting`: open processes by status and next action.

The use case is :func:`billing_core.services.run_dunning.run_dunning` (``recoup dunning run``).
"""

from billing_core.dunning.lifecycle import (
    DUNNING_LIFECYCLE,
    Action,
    Channel,
    DunningEvent,
    DunningStatus,
    Outcome,
)
from billing_core.dunning.policy import Decision, DunningPolicy, DunningState, StaticPolicy

__all__ = [
    "DUNNING_LIFECYCLE",
    "Action",
    "Channel",
    "Decision",
    "DunningEvent",
    "DunningPolicy",
    "DunningState",
    "DunningStatus",
    "Outcome",
    "StaticPolicy",
]
