"""Membership: the SWIM core with Lifeguard extensions, its asyncio shell, discovery, and a
simulator.

The core (:class:`Swim`) is pure: time and randomness come in as arguments, packets and member
events come out of :meth:`Swim.ready`. :class:`Membership` drives it over UDP and the node
transport; :class:`MdnsDiscovery`, :class:`StaticSeeds` and :class:`DnsSeeds` introduce peers.
:class:`Simulation` runs many cores over a simulated network in virtual time. See
``docs/mesh.md``.
"""

from ._config import MAX_ADDRESS_SIZE as MAX_ADDRESS_SIZE
from ._config import MAX_NAME_SIZE as MAX_NAME_SIZE
from ._config import SwimConfig as SwimConfig
from ._discovery import Discovery as Discovery
from ._discovery import DiscoveryError as DiscoveryError
from ._discovery import DiscoveryStatistics as DiscoveryStatistics
from ._discovery import DnsSeeds as DnsSeeds
from ._discovery import Seed as Seed
from ._discovery import SeedSpecError as SeedSpecError
from ._discovery import StaticSeeds as StaticSeeds
from ._discovery import make_discovery as make_discovery
from ._events import MemberAlive as MemberAlive
from ._events import MemberEvent as MemberEvent
from ._events import MemberFailed as MemberFailed
from ._events import MemberJoined as MemberJoined
from ._events import MemberLeft as MemberLeft
from ._events import MemberReaped as MemberReaped
from ._events import MemberSuspect as MemberSuspect
from ._events import MemberUpdated as MemberUpdated
from ._events import Outgoing as Outgoing
from ._events import Ready as Ready
from ._events import SwimStatistics as SwimStatistics
from ._events import TransportHint as TransportHint
from ._mdns import MdnsDiscovery as MdnsDiscovery
from ._messages import Ack as Ack
from ._messages import Alive as Alive
from ._messages import Dead as Dead
from ._messages import IndirectPing as IndirectPing
from ._messages import Member as Member
from ._messages import MemberStatus as MemberStatus
from ._messages import Message as Message
from ._messages import Meta as Meta
from ._messages import Nack as Nack
from ._messages import Ping as Ping
from ._messages import PushPull as PushPull
from ._messages import Suspect as Suspect
from ._messages import decode_message as decode_message
from ._messages import decode_packet as decode_packet
from ._messages import encode_message as encode_message
from ._messages import encode_packet as encode_packet
from ._messages import message_size as message_size
from ._shell import Membership as Membership
from ._shell import MeshStatistics as MeshStatistics
from ._sim import SimEvent as SimEvent
from ._sim import SimMember as SimMember
from ._sim import SimStatistics as SimStatistics
from ._sim import Simulation as Simulation
from ._swim import Swim as Swim
