"""Commands: ``token create|list|revoke``, ``db upgrade``, ``backup``, ``restore``."""

import asyncio
import datetime
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from operadora.config import CONFIG_FILE_ENV, Settings

T = TypeVar("T")
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _run(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from operadora.store import Store

    async def main() -> T:
        store = await Store.open(settings.store)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _when(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def register(app: typer.Typer) -> None:
    from operadora.cli import ConfigOption, settings_or_exit

    token_app = typer.Typer(
        help="API tokens (bearer tokens for the REST API and dashboard).", no_args_is_help=True
    )
    db_app = typer.Typer(help="The call-record database.", no_args_is_help=True)
    app.add_typer(token_app, name="token")
    app.add_typer(db_app, name="db")

    @token_app.command("create")
    def token_create(
        role: Annotated[str, typer.Option(help="admin (may act on calls) or viewer")],
        name: Annotated[str, typer.Option(help="who or what uses it")] = "",
        config: ConfigOption = None,
    ) -> None:
        """Create a token and print it once (only its hash is stored)."""
        if role not in ("admin", "viewer"):
            err_console.print("[red]error:[/red] --role must be admin or viewer")
            raise typer.Exit(2)
        settings = settings_or_exit(config)
        token, row = _run(settings, lambda s: s.tokens.create(role, name))
        err_console.print(
            f"token {row.id} ({row.role}, {row.name}); store it now, it is not shown again:"
        )
        console.print(token, markup=False, highlight=False)

    @token_app.command("list")
    def token_list(config: ConfigOption = None) -> None:
        """List tokens (never the tokens themselves)."""
        settings = settings_or_exit(config)
        rows = _run(settings, lambda s: s.tokens.all())
        table = Table("id", "name", "role", "prefix", "created", "revoked")
        for r in rows:
            table.add_row(
                str(r.id), r.name, r.role, r.prefix + "…", _when(r.created_at), _when(r.revoked_at)
            )
        console.print(table)

    @token_app.command("revoke")
    def token_revoke(token_id: int, config: ConfigOption = None) -> None:
        """Revoke a token by id (takes effect within seconds)."""
        settings = settings_or_exit(config)
        if not _run(settings, lambda s: s.tokens.revoke(token_id)):
            err_console.print(f"[red]error:[/red] no active token {token_id}")
            raise typer.Exit(1)
        console.print(f"token {token_id} revoked")

    @db_app.command("upgrade")
    def db_upgrade(config: ConfigOption = None) -> None:
        """Create or migrate the database schema to the latest version."""
        settings = settings_or_exit(config)
        revision = _run(settings, lambda s: s.db.current_revision())
        console.print(f"database at revision {revision}")

    @app.command("backup")
    def backup(
        output: Annotated[Path, typer.Option("--output", "-o", help="archive to write")],
        asterisk: Annotated[
            list[Path] | None,
            typer.Option("--asterisk", help="generated Asterisk config file or folder (repeat)"),
        ] = None,
        config: ConfigOption = None,
    ) -> None:
        """Back up settings, agent scripts, tokens and Asterisk configuration in one file."""
        from operadora.store.backup import BackupContents, BackupError, write_backup

        settings = settings_or_exit(config)
        config_file = config or (Path(p) if (p := os.environ.get(CONFIG_FILE_ENV)) else None)
        scripts = [settings.voice.agent.script] if settings.voice.agent.script else []
        tokens = _run(settings, lambda s: s.tokens.export())
        contents = BackupContents(config_file, scripts, list(asterisk or []), tokens)
        try:
            manifest = write_backup(contents, output)
        except BackupError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        console.print(
            f"wrote {output}: {len(manifest['files'])} file(s), {len(manifest['tokens'])} token(s)"
        )
        if config_file is None:
            err_console.print(
                "[yellow]note:[/yellow] no config file in use; settings given "
                "by environment variables are not in the backup"
            )

    @app.command("restore")
    def restore(
        archive: Annotated[Path, typer.Argument(help="a file written by operadora backup")],
        force: Annotated[bool, typer.Option(help="overwrite existing files")] = False,
    ) -> None:
        """Restore a backup into this installation (files back in place, tokens into the
        database the restored settings name)."""
        from operadora.store.backup import BackupError, read_manifest, restore_files

        try:
            manifest = read_manifest(archive)
            restored = restore_files(archive, force=force)
        except BackupError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        config_file = next((r.path for r in restored if r.kind == "config"), None)
        for r in restored:
            console.print(f"restored {r.kind}: {r.path}")
        settings = settings_or_exit(config_file)
        added = _run(settings, lambda s: s.tokens.import_(manifest["tokens"]))
        console.print(f"restored {added} token(s)")
