"""Ember: Erlang/OTP's ideas for Python, a distributed actor runtime on asyncio."""

from ._errors import CallTimeout as CallTimeout
from ._errors import EmberError as EmberError
from ._errors import MailboxFull as MailboxFull
from ._errors import NameTaken as NameTaken
from ._errors import NodeDown as NodeDown
from ._errors import NoProc as NoProc
from ._errors import StartError as StartError
from ._errors import UnknownName as UnknownName
from ._errors import UsageError as UsageError
from .actors import KILL as KILL
from .actors import KILLED as KILLED
from .actors import NOCONNECTION as NOCONNECTION
from .actors import NOPROC as NOPROC
from .actors import NORMAL as NORMAL
from .actors import RECEIVE_TIMEOUT as RECEIVE_TIMEOUT
from .actors import SHUTDOWN as SHUTDOWN
from .actors import Actor as Actor
from .actors import ChildInfo as ChildInfo
from .actors import ChildSpec as ChildSpec
from .actors import Down as Down
from .actors import Exit as Exit
from .actors import Node as Node
from .actors import Pid as Pid
from .actors import ProcessInfo as ProcessInfo
from .actors import ReceiveTimeout as ReceiveTimeout
from .actors import Ref as Ref
from .actors import ReplyHandle as ReplyHandle
from .actors import Statistics as Statistics
from .actors import Supervisor as Supervisor
from .actors import TimerRef as TimerRef
from .actors import call as call
from .actors import cancel_timer as cancel_timer
from .actors import cast as cast
from .actors import child as child
from .actors import current as current
from .actors import demonitor as demonitor
from .actors import exit as exit  # noqa: A004
from .actors import link as link
from .actors import monitor as monitor
from .actors import register as register
from .actors import run as run
from .actors import self as self
from .actors import send as send
from .actors import send_after as send_after
from .actors import spawn as spawn
from .actors import spawn_link as spawn_link
from .actors import spawn_monitor as spawn_monitor
from .actors import trap_exits as trap_exits
from .actors import unlink as unlink
from .actors import unregister as unregister
from .actors import whereis as whereis

__version__ = "0.1.0"
