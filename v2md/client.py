"""Client-side helpers shared by v2mctl, the demo and the tests: proxies and name waiting."""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.introspection import Interface, Node

from v2md import BUS_NAME, INTERFACE, OBJECT_PATH

# The bus contract, installed with the package (and by meson for D-Bus tools).
CONTRACT = resources.files("v2md") / "data" / "org.v2m.Dictation.xml"

# dbus-fast makes a proxy's call_*, on_* and off_* members from introspection at run time,
# so no static type can name them: a proxy is typed as what it is to the checker, Any.
Proxy = Any


async def dictation_proxy(bus: MessageBus) -> tuple[Proxy, Proxy]:
    """The org.v2m.Dictation interface and its Properties interface, from live introspection."""
    introspection = await bus.introspect(BUS_NAME, OBJECT_PATH)
    obj = bus.get_proxy_object(BUS_NAME, OBJECT_PATH, introspection)
    return obj.get_interface(INTERFACE), obj.get_interface("org.freedesktop.DBus.Properties")


def contract_interface() -> Interface:
    """The interface as the contract describes it."""
    (iface,) = (i for i in Node.parse(CONTRACT.read_text()).interfaces if i.name == INTERFACE)
    return iface


def contract_properties() -> list[str]:
    """The interface's property names, in the contract's order."""
    return [prop.name for prop in contract_interface().properties]


async def name_has_owner(bus: MessageBus, name: str = BUS_NAME) -> bool:
    reply = await bus.call(_to_bus_daemon("NameHasOwner", [name]))
    return reply.message_type is MessageType.METHOD_RETURN and bool(reply.body[0])


async def wait_for_name(bus: MessageBus, timeout: float, name: str = BUS_NAME) -> None:
    """Return once ``name`` has an owner, watching NameOwnerChanged instead of polling."""
    owned = asyncio.Event()

    def handler(msg: Message) -> None:
        if msg.member == "NameOwnerChanged" and msg.body[0] == name and msg.body[2]:
            owned.set()

    rule = f"type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{name}'"
    await bus.call(_to_bus_daemon("AddMatch", [rule]))
    bus.add_message_handler(handler)
    try:
        if not await name_has_owner(bus, name):
            await asyncio.wait_for(owned.wait(), timeout)
    finally:
        bus.remove_message_handler(handler)


def _to_bus_daemon(member: str, body: list[str]) -> Message:
    """A call to the bus daemon itself, taking one string."""
    return Message(
        destination="org.freedesktop.DBus",
        path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus",
        member=member,
        signature="s",
        body=body,
    )
