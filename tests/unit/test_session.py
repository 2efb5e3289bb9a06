"""The operator's HTTP session: every TLS connection made once it exists reads through a small buffer."""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto

import kopf
import pytest

from campaign_autoscaler.adapters.session import TLS_READ_BUFFER, bounded_session


@pytest.mark.asyncio
async def test_tls_connections_read_through_the_small_buffer() -> None:
    session = bounded_session(kopf.ConnectionInfo(server="https://127.0.0.1:1"), 8)
    try:
        # The protocol asyncio gives a TLS connection (as aiohttp's connector gets it): its read buffer.
        protocol = sslproto.SSLProtocol(
            asyncio.get_running_loop(), asyncio.Protocol(), ssl.create_default_context(), None
        )
        assert len(protocol._ssl_buffer) == TLS_READ_BUFFER == 32 * 1024
    finally:
        await session.close()
