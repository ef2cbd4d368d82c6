"""A forward HTTP proxy on loopback that demands credentials, for tests of the client's proxy support.

It forwards plain-http requests in absolute form (``GET http://127.0.0.1:PORT/audit/v1/logs``),
which is how a client talks to a proxy for an ``http://`` URL; CONNECT tunnels are not supported.
A request without the right ``Proxy-Authorization`` gets ``407 Proxy Authentication Required``.
It records what it saw (never a credential or token: only whether they were sent).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import aiohttp
from aiohttp import BasicAuth, web

from .site import LoopbackSite

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass
class ProxiedRequest:
    """One request the proxy received."""

    method: str
    target: str  # the absolute URL asked for, without its query
    authorized: bool  # whether the right Proxy-Authorization came with it
    status: int


class FakeForwardProxy(LoopbackSite):
    """``async with FakeForwardProxy("user", "secret") as proxy``; :attr:`url` has no credentials."""

    def __init__(self, username: str = "proxy-user", password: str | None = None) -> None:
        self.username = username
        #: Random unless given, so a test can search for it in every message and log.
        self.password = password if password is not None else secrets.token_hex(12)
        self.requests: list[ProxiedRequest] = []
        self._session: aiohttp.ClientSession | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` once started (add credentials with :meth:`url_with_credentials`)."""
        if self._url is None:
            raise RuntimeError("the proxy is not started: use `async with`")
        return self._url

    def url_with_credentials(self, username: str | None = None, password: str | None = None) -> str:
        host = self.url.removeprefix("http://")
        return f"http://{username or self.username}:{password or self.password}@{host}"

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._url = await self._listen(app, host, 0)
        self._session = aiohttp.ClientSession(auto_decompress=False)
        return self._url

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await super().close()

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Proxy-Authorization")
        if not header:
            return False
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            return False
        return (auth.login, auth.password) == (self.username, self.password)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        target = request.url
        record = ProxiedRequest(
            request.method, str(target.with_query(None)), self._authorized(request), status=0
        )
        self.requests.append(record)
        if not record.authorized:
            record.status = 407
            challenge = {"Proxy-Authenticate": 'Basic realm="fake"'}
            return web.Response(status=407, text="proxy credentials required", headers=challenge)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(
            request.method, target, headers=headers, data=await request.read(), allow_redirects=False
        ) as upstream:
            body = await upstream.read()
            record.status = upstream.status
            forwarded = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=upstream.status, body=body, headers=forwarded)


__all__ = ["FakeForwardProxy", "ProxiedRequest"]
