"""Node-to-node transport: frames, codec, handshake, TCP connections and distribution."""

from ._codec import Codec as Codec
from ._config import TransportConfig as TransportConfig
from ._dist import Distribution as Distribution
from ._errors import AuthenticationError as AuthenticationError
from ._errors import ProtocolError as ProtocolError
from ._errors import UndecodableError as UndecodableError
from ._errors import UnsendableError as UnsendableError
from ._faults import FaultChannel as FaultChannel
from ._faults import FaultInjectionDisabled as FaultInjectionDisabled
from ._faults import Faults as Faults
from ._faults import FaultState as FaultState
from ._frame import Channel as Channel
from ._frame import Frame as Frame
from ._interface import NodeTransport as NodeTransport
from ._memory import MemoryNetwork as MemoryNetwork
from ._memory import MemoryTransport as MemoryTransport
from ._queue import FrameTooLarge as FrameTooLarge
from ._queue import NoRoute as NoRoute
from ._queue import QueueFull as QueueFull
from ._stats import TransportStats as TransportStats
from ._transport import Transport as Transport
