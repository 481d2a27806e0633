"""``operadora api``: the REST API and dashboard alone, over the call records (no calls)."""

import asyncio
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    from operadora.cli import ConfigOption, settings_or_exit, setup_logging

    @app.command("api")
    def api(
        host: Annotated[str | None, typer.Option(help="bind address (api.host)")] = None,
        port: Annotated[int | None, typer.Option(help="port (api.port)")] = None,
        config: ConfigOption = None,
    ) -> None:
        """Serve the REST API and the dashboard without call control: history, records,
        and live calls of other instances when Redis is configured."""
        from operadora.api.app import api_server, create_app
        from operadora.events import EventBus
        from operadora.store import Store

        settings = settings_or_exit(config)
        setup_logging(settings)

        async def main() -> None:
            store = await Store.open(settings.store)
            try:
                web = create_app(settings, store, EventBus())
                overrides: dict[str, object] = {}
                if host is not None:
                    overrides["host"] = host
                if port is not None:
                    overrides["port"] = port
                api_settings = settings.model_copy(
                    update={"api": settings.api.model_copy(update=overrides)}
                )
                server = api_server(web, api_settings, handle_signals=True)
                await server.serve()
            finally:
                await store.close()

        asyncio.run(main())
