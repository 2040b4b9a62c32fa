"""Raft consensus: replicated state machines on a pure Raft core and a durable log.

The API is :class:`Cluster` (start or connect to a group, write, read, change membership) and
:class:`StateMachine` (declare command handlers with :func:`apply`). The core
(:class:`RawNode`, :class:`RaftConfig`) and the storages are exported for those who drive Raft
themselves. See ``docs/consensus.md``.
"""

from ._cluster import Cluster as Cluster
from ._cluster_config import ClusterConfig as ClusterConfig
from ._cluster_errors import ChangePending as ChangePending
from ._cluster_errors import ClusterError as ClusterError
from ._cluster_errors import CommandFailed as CommandFailed
from ._cluster_errors import CommandTooLarge as CommandTooLarge
from ._cluster_errors import GroupExists as GroupExists
from ._cluster_errors import NodeUnreachable as NodeUnreachable
from ._cluster_errors import NoLeader as NoLeader
from ._cluster_errors import NotLeader as NotLeader
from ._cluster_errors import OutcomeUnknown as OutcomeUnknown
from ._cluster_errors import ReadTimeout as ReadTimeout
from ._cluster_errors import RequestTimeout as RequestTimeout
from ._cluster_errors import UnknownGroup as UnknownGroup
from ._cluster_errors import WriteTimeout as WriteTimeout
from ._config import RaftConfig as RaftConfig
from ._errors import MessageDecodeError as MessageDecodeError
from ._errors import ProposalDropped as ProposalDropped
from ._errors import RaftUsageError as RaftUsageError
from ._memory import MemoryStorage as MemoryStorage
from ._messages import ConfChange as ConfChange
from ._messages import Message as Message
from ._messages import ReadState as ReadState
from ._messages import Ready as Ready
from ._messages import Role as Role
from ._messages import SoftState as SoftState
from ._messages import Status as Status
from ._messages import decode_message as decode_message
from ._messages import encode_message as encode_message
from ._rawnode import RawNode as RawNode
from ._state_machine import KVStateMachine as KVStateMachine
from ._state_machine import StateMachine as StateMachine
from ._state_machine import apply as apply
from ._store import DurableStorage as DurableStorage
from ._types import Compacted as Compacted
from ._types import ConfState as ConfState
from ._types import Entry as Entry
from ._types import EntryType as EntryType
from ._types import HardState as HardState
from ._types import LogStorage as LogStorage
from ._types import Snapshot as Snapshot
from ._types import SnapshotMeta as SnapshotMeta
from ._types import StorageError as StorageError
from ._types import Unavailable as Unavailable
