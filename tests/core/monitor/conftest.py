from collections.abc import Iterator

import pytest
from monitor_servers import PrometheusApp


@pytest.fixture
def prometheus_app() -> Iterator[PrometheusApp]:
    """A plain prometheus_client app, stopped when the test ends."""
    with PrometheusApp() as app:
        yield app
