"""Global names in three tiers (``node.names``) and OTP ``pg`` process groups (``node.pg``).

``ember.Name("orders", tier="consistent")`` is a destination that ``send``, ``cast``, ``call``,
``link`` and ``monitor`` accept wherever they accept a pid. See ``docs/registry.md`` and
``docs/pg.md``.
"""

from ._config import SYSTEM_GROUP as SYSTEM_GROUP
from ._config import ConflictPolicy as ConflictPolicy
from ._config import PgConfig as PgConfig
from ._config import RegistryConfig as RegistryConfig
from ._errors import NameConflict as NameConflict
from ._errors import NameLost as NameLost
from ._errors import NotLocal as NotLocal
from ._errors import TierUnavailable as TierUnavailable
from ._errors import UnknownScope as UnknownScope
from ._errors import WaitTimeout as WaitTimeout
from ._name import Name as Name
from ._name import Tier as Tier
from ._names import RELEASED as RELEASED
from ._names import Names as Names
from ._names import Registration as Registration
from ._pg import ProcessGroups as ProcessGroups
from ._pg_core import GroupEvent as GroupEvent
from ._pg_core import PgCore as PgCore
