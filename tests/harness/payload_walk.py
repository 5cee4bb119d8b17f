"""Every Temporal `Payload` inside a proto message (a history, a describe answer), found by
walking the message's fields: for checking what the server holds, and for decoding it."""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec


def payloads(message: Message) -> Iterator[Payload]:
    """Depth first, every Payload in `message` (lists and maps included)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if isinstance(value, Message):
            yield from payloads(value)
        elif hasattr(value, "keys"):  # a map: only maps of messages hold payloads
            for item in value.values():
                if isinstance(item, Message):
                    yield from payloads(item)
        else:  # a repeated field of messages
            for item in value:
                yield from payloads(item)


async def decode_all(message: Message, codec: PayloadCodec) -> int:
    """Decode every payload of `message` in place with `codec`; returns how many there were."""
    found = list(payloads(message))
    for payload in found:
        [plain] = await codec.decode([payload])
        payload.CopyFrom(plain)
    return len(found)
