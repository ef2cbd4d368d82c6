"""What the fake server and the fake proxy share: an aiohttp application served on loopback only."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from typing_extensions import Self


class LoopbackSite:
    """An aiohttp application on a loopback address; ``async with`` starts it and closes it."""

    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        raise NotImplementedError

    async def _listen(self, app: web.Application, host: str, port: int, **runner_options: Any) -> str:
        """Serve ``app`` on ``host:port`` (``port=0``: an ephemeral one); return ``http://HOST:PORT``."""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"{type(self).__name__} only listens on loopback addresses, not {host}")
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, **runner_options)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        return f"http://{bound_host}:{bound_port}"

    async def close(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
