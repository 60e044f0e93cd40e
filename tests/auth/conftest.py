"""Auth fixtures: a fake Google on loopback, and settings that point at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ftl.config import Settings
from tests.auth.fake_google import CLIENT_ID, FakeGoogle


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle().start()
    fake.publish("g1")
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def settings(settings: Settings, google: FakeGoogle) -> Settings:
    return settings.replace(google_client_ids=("other-client", CLIENT_ID), google_jwks_url=google.url)
