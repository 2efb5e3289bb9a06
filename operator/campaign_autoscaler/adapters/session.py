"""The operator's HTTP session to the API server, shared by Kopf and the workload cache: the kubernetes
client's identity as Kopf's connection info, and a session that bounds its requests in flight."""

from __future__ import annotations

import asyncio
from asyncio import sslproto

import aiohttp
import kopf
from kubernetes import client


def connection_info(configuration: client.Configuration) -> kopf.ConnectionInfo:
    """The same cluster, as the same identity, as the kubernetes client of the adapters."""
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    scheme, token = header.split(" ", 1) if header and " " in header else (None, header)
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        username=configuration.username or None,
        password=configuration.password or None,
    )


# asyncio gives every TLS connection a read buffer of SSLProtocol.max_size (256 KiB), allocated and zeroed
# when it connects. The operator holds one connection per watch (Deployments, HPAs, StatefulSets and Pods per
# namespace, Kopf's own) plus its pooled requests: at 500 events over 10 namespaces, 54 connections held
# 13.9 MiB, a third of the operator's heap (tracemalloc, `python -m benchmarks scale`). A smaller buffer
# only means more, smaller reads of the same bytes.
TLS_READ_BUFFER = 32 * 1024


def _small_tls_buffers() -> None:
    """Every TLS connection made from now on reads through a TLS_READ_BUFFER buffer."""
    if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
        sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


def _is_watch(request: aiohttp.ClientRequest) -> bool:
    return request.url.query.get("watch") in ("true", "1")


def bounded_session(info: kopf.ConnectionInfo, max_requests: int) -> aiohttp.ClientSession:
    """An HTTP session (Kopf's, the workload cache's): at most `max_requests` requests at once, watches aside.

    Kopf's own session opens a new TLS connection for every concurrent request, without a limit: 500 events
    seen at once at start-up meant hundreds of connections, each with a 256 KiB read buffer, and most of the
    operator's peak memory. A connection-count limit cannot be used instead: every watch stream holds its
    connection for minutes, and how many there are depends on the namespaces, so a limit could starve them.
    """
    _small_tls_buffers()
    gate = asyncio.Semaphore(max_requests)

    async def bounded(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if _is_watch(request):
            return await handler(request)
        async with gate:
            response = await handler(request)
            # Read the body while holding the gate: the connection goes back to the pool before the next one.
            await response.read()
            return response

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        middlewares=(bounded,),
    )
