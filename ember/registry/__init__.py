"""Global names in three tiers (``node.names``) and OTP ``pg`` process groups (``node.pg``).

``ember.Name("orders", tier="consistent")`` is a destination that ``send``, ``cast``, ``call``,
``link`` and ``monitor`` accept wherever they accept a pid. ``register``, ``whereis``... act on
the current node's registry, and ``ember.registry.pg`` has the pg functions likewise. See
``docs/registry.md`` and ``docs/pg.md``.
"""

from . import pg as pg
from ._api import demonitor as demonitor
from ._api import lookup as lookup
from ._api import monitor as monitor
from ._api import register as register
from ._api import registered as registered
from ._api import unregister as unregister
from ._api import wait_for as wait_for
from ._api import whereis as whereis
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
