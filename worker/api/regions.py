"""Which base URL a request goes to: a tenant's regional URLs, in order, and their health.

The SDK's pool for an area (`docs/api-reference.md` §1.2) lists the area's two regions on its
two domains; `next_region()` is left to the caller. Here a `Regions` pool holds a tenant's base
URLs (an area's catalogue, or URLs the operator lists) and prefers the first that has not failed
recently: a URL whose request failed at the transport or with a 5xx is set aside for
`CONVOAI_API_REGION_COOLDOWN_SECONDS`, and requests that are safe to resend go to the next one.
A request that is not safe to resend always goes to the first URL: sending it to another region
after a failure that may have reached the first could run it twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog

log = structlog.get_logger(__name__)

# The SDK's areas: region prefixes and domain suffixes in order, and the path suffix
AREAS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "us": (("api-us-west-1", "api-us-east-1"), ("agora.io", "sd-rtn.com"), "/api"),
    "eu": (("api-eu-west-1", "api-eu-central-1"), ("agora.io", "sd-rtn.com"), "/api"),
    "ap": (("api-ap-southeast-1", "api-ap-northeast-1"), ("agora.io", "sd-rtn.com"), "/api"),
    "cn": (("api-cn-east-1", "api-cn-north-1"), ("sd-rtn.com", "agora.io"), "/cn/api"),
}
PRODUCT_PATH = "/conversational-ai-agent"


def area_urls(area: str) -> tuple[str, ...]:
    """The base URLs of an SDK area, in the order its pool would try them (each region on the
    first domain, then on the second)."""
    prefixes, domains, path = AREAS[area]
    return tuple(
        f"https://{prefix}.{domain}{path}{PRODUCT_PATH}"
        for domain in domains
        for prefix in prefixes
    )


class Regions:
    """One tenant's base URLs and which of them failed recently (shared by all its requests)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("a tenant needs at least one base URL")
        self.urls = tuple(url.rstrip("/") for url in urls)
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._down_until: dict[str, float] = {}

    @property
    def primary(self) -> str:
        """The first URL: where requests that are not safe to resend always go."""
        return self.urls[0]

    def current(self) -> str:
        """The first URL not set aside; when all are, the one whose set-aside ends first."""
        now = self._clock()
        for url in self.urls:
            if self._down_until.get(url, 0.0) <= now:
                return url
        return min(self.urls, key=lambda url: self._down_until[url])

    def others(self, failed: str) -> list[str]:
        """The URLs still worth trying after `failed`, best first (for an immediate retry)."""
        now = self._clock()
        return [u for u in self.urls if u != failed and self._down_until.get(u, 0.0) <= now]

    def failed(self, url: str, why: str) -> None:
        """Set `url` aside: its request failed at the transport or with a 5xx."""
        if len(self.urls) == 1:
            return  # nothing to fail over to
        if self._down_until.get(url, 0.0) <= self._clock():
            log.warning("api_region_set_aside", base_url=url, reason=why, seconds=self._cooldown)
        self._down_until[url] = self._clock() + self._cooldown

    def succeeded(self, url: str) -> None:
        """`url` answered: it is preferred again in its turn."""
        if self._down_until.pop(url, None) is not None:
            log.info("api_region_back", base_url=url)
