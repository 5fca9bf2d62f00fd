"""A BFF's /readyz tells a read API that answers but cannot serve from one that is gone."""

from pathlib import Path

from fastapi.testclient import TestClient

from bff.web.app import create_app as create_web_app
from readmodels.sql import PostgresDatabase
from tests.support.bff import ReadApiProcess, bff_settings
from tests.support.postgres import require_postgres, scratch_databases
from tests.support.processes import free_port
from tests.support.read_models import ReadModelWriter
from tests.support.servers import RedisServer, require_server_binaries, wait_until


def test_readyz_reports_the_read_api_ready_then_not_ready_then_unreachable(
    tmp_path: Path,
) -> None:
    require_server_binaries("redis-server")
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    with scratch_databases(require_postgres(), "read") as urls:
        ReadModelWriter(PostgresDatabase(urls["read"]), redis_server.client()).close()  # tables
        env = {"STRATA_READ_DATABASE_URL": urls["read"], "STRATA_REDIS_URL": redis_server.url}
        process = ReadApiProcess(tmp_path / "var", free_port(), env)
        with TestClient(create_web_app(bff_settings(process.url))) as web:

            def read_api() -> str:
                answer = web.get("/readyz")
                assert answer.status_code == 200  # the BFF itself stays ready
                return str(answer.json()["read_api"])

            with process.running() as read_api_process:
                assert read_api() == "ready"
                redis_server.crash()
                wait_until(lambda: read_api() == "not-ready", 20, "the read API not ready")
                read_api_process.kill()
                read_api_process.wait(timeout=10)
            assert read_api() == "unreachable"
