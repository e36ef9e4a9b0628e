"""The contract suite on the S3 backend, against moto in server mode on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mooring.session.backends.s3.repository import S3SessionRepository
from mooring.testing import SessionRepositoryContract

from helpers.s3server import MotoS3, start_moto_server

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[MotoS3]:
    server = start_moto_server()
    yield server
    server.stop()


class TestS3Repository(SessionRepositoryContract):
    @pytest.fixture
    def repository(self, moto_s3: MotoS3) -> Iterator[S3SessionRepository]:
        repo = S3SessionRepository(moto_s3.new_bucket(), "tenant/sessions", client=moto_s3.client())
        yield repo
        asyncio.run(repo.close())


class TestS3RepositoryWithoutPrefix(SessionRepositoryContract):
    @pytest.fixture
    def repository(self, moto_s3: MotoS3) -> Iterator[S3SessionRepository]:
        repo = S3SessionRepository(
            moto_s3.new_bucket(), boto_session=moto_s3.boto_session(), endpoint_url=moto_s3.endpoint_url
        )
        yield repo
        asyncio.run(repo.close())
