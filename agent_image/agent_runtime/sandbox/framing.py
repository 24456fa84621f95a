"""The tool-runner socket's framing: a 4-byte big-endian length, then the request.

The client keeps its side open while the call runs; closing it cancels the call. The
runner answers with the outcome and closes.
"""

from __future__ import annotations

import asyncio
import struct

from agent_runtime.sandbox.protocol import MAX_REQUEST_BYTES, ProtocolError

_HEADER = struct.Struct(">I")


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """One framed request; `ProtocolError` if it is cut short or too large."""
    try:
        (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
        if size > MAX_REQUEST_BYTES:
            raise ProtocolError(f"request larger than {MAX_REQUEST_BYTES} bytes")
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise ProtocolError("the connection closed in the middle of a request") from None
