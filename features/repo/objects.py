"""Every object of the repository, for the ``feast`` command line (``feast -c features/repo plan``).

The command line imports each file not listed in ``.feastignore`` and registers the objects it
finds; this module imports them all from their own modules, so each is found once.
"""

from features.repo.data_sources import *  # noqa: F403
from features.repo.entities import *  # noqa: F403
from features.repo.feature_services import *  # noqa: F403
from features.repo.feature_views import *  # noqa: F403
from features.repo.on_demand_feature_views import *  # noqa: F403
