"""The `status_class` label of the API request histogram, at the edges of each class."""

from __future__ import annotations

import pytest

from worker.api.observer import status_class


@pytest.mark.parametrize(
    ("status", "label"),
    [
        (101, "error"),
        (200, "2xx"),
        (299, "2xx"),
        (300, "error"),
        (399, "error"),
        (400, "4xx"),
        (401, "4xx"),
        (428, "4xx"),
        (429, "429"),
        (499, "4xx"),
        (500, "5xx"),
        (501, "5xx"),
    ],
)
def test_each_status_falls_in_its_class(status: int, label: str) -> None:
    """1xx and 3xx are not usable responses; 429 has a class of its own for the rate-limit panel."""
    assert status_class(status) == label
