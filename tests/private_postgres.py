"""A PostgreSQL server of the test's own, to stop and start while the service runs: the shared
server on 5432 serves the rest of the suite and must never go down under it.

The cluster lives in a fresh folder with fsync off (nothing in it outlives the test). PostgreSQL
refuses to run as root, so as root it runs as the `postgres` user; elsewhere as whoever runs the
tests."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from tests.harness import free_port


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps them versioned)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="safetybot-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_user, str(self._bin / command[0]), *command[1:]], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    async def create(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        await asyncio.to_thread(self._run, "initdb", "-D", str(self.data), "-A", "trust",
                                "-U", "postgres", "--no-sync", "-E", "UTF8")
        await self.start()

    async def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        await asyncio.to_thread(self._run, "pg_ctl", "-D", str(self.data), "-o", options,
                                "-l", str(self.root / "server.log"), "-w", "start")

    async def stop(self) -> None:
        """A fast shutdown, as a restart for maintenance does: sessions are ended."""
        await asyncio.to_thread(self._run, "pg_ctl", "-D", str(self.data), "-m", "fast",
                                "-w", "stop")

    async def database(self, name: str) -> str:
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres",
                                     database="postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    async def destroy(self) -> None:
        try:
            await asyncio.to_thread(self._run, "pg_ctl", "-D", str(self.data), "-m",
                                    "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass     # it was not running
        shutil.rmtree(self.root, ignore_errors=True)
