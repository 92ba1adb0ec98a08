"""Web pages by address: one page, or a site's pages under a prefix (up to a number of pages), fetched for a
knowledge base's web sources (rag/sources.py, synced by rag/sync.py) and read by the HTML loader like an .html file.

A page is fetched again on each sync with its validators (ETag, Last-Modified): an unchanged page costs one
"304 Not Modified"; a page that answers in full with the same content is unchanged too (its hash). A page the
server says is gone (404, 410) is removed; one that cannot be reached now is kept as it was.

Addresses on this machine and on private networks are refused (127.0.0.0/8, 10/8, 172.16/12, 192.168/16,
link-local, …) unless the settings allow them (RAG_URL_ALLOW): otherwise a page, or a link or a redirect in
one, could make the app read a router's pages or a local service into the knowledge base. The check is made on
the addresses a name resolves to before connecting, on every redirect, and on the address actually connected
to (so a name that resolves differently the second time is caught too).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
import urllib.robotparser
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

import httpx

from rag.config import Settings, url_allow_items
from rag.errors import RagError
from rag.sqlite import now_iso

logger = logging.getLogger(__name__)

MAX_PAGE_BYTES = 10 * 1024 * 1024  # a web page larger than this is refused (HTML pages are rarely over 1 MB)
TIMEOUT_SECONDS = 20.0
MAX_REDIRECTS = 5
USER_AGENT = "local-rag-chat (a private document assistant; fetches pages its user added)"
HTML_TYPES = ("text/html", "application/xhtml+xml")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebError(RagError):
    """A web address cannot be used or fetched."""


@dataclass(frozen=True)
class PageState:
    """What the last fetch of a page said: its validators and its content's hash."""

    url: str
    etag: str
    last_modified: str
    content_hash: str
    fetched_at: str


@dataclass(frozen=True)
class FetchedPage:
    url: str
    state: PageState  # new, or the known one for an unchanged page
    body: bytes | None = None  # None: unchanged since it was last fetched (304), or not fetched (an error)
    error: str = ""


@dataclass
class Crawl:
    pages: list[FetchedPage] = field(default_factory=list)  # every page reached, in the order reached
    gone: list[str] = field(default_factory=list)  # pages the server says are gone (404, 410)
    complete: bool = True  # False: a page could not be fetched, so the pages it links to may be missing


def canonical_url(url: str) -> str:
    """The address as a document's name: http(s) only, no fragment, the host in lower case, a path."""
    url = url.strip()
    try:
        parts = urlsplit(urldefrag(url)[0])
    except ValueError as exc:
        raise WebError(f"{url!r} is not a web address ({exc}): give one like https://example.org/page.") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise WebError(f"{url!r} is not a web address: give one that starts with http:// or https://.")
    netloc = parts.hostname.lower() + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


class AddressPolicy:
    """Which hosts may be fetched: any public address, and the private ones the settings allow."""

    def __init__(self, allowed: Sequence[str] = ()) -> None:
        self.names = {a.rstrip(".") for a in allowed if not _is_network(a)}
        self.networks = [ipaddress.ip_network(a, strict=False) for a in allowed if _is_network(a)]

    def check_host(self, host: str) -> None:
        """Raise WebError when `host` is, or resolves to, an address that is not allowed."""
        host = host.lower().rstrip(".")
        if host in self.names:
            return
        try:
            addresses = {ipaddress.ip_address(host)}
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            except OSError as exc:
                raise WebError(f"{host} cannot be found ({exc.strerror or exc}): check the address.") from None
            addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
        for address in addresses:
            self.check_address(address, host)

    def check_address(self, address: Address, host: str) -> None:
        if host in self.names or address.is_global or any(address in net for net in self.networks):
            return
        where = "this machine" if address.is_loopback else "a private network"
        raise WebError(
            f"{host} is on {where} ({address}): such addresses are refused, so that a page cannot make the app "
            f'read local services. To allow it, add {host} (or its network) to RAG_URL_ALLOW, or to "Web pages: '
            'private addresses allowed" on the Settings page.'
        )


def _is_network(item: str) -> bool:
    try:
        ipaddress.ip_network(item, strict=False)
        return True
    except ValueError:
        return False


class Fetcher:
    """Fetches pages under the address policy; one HTTP client, kept for its connections."""

    def __init__(self, policy: AddressPolicy, timeout: float = TIMEOUT_SECONDS, max_bytes: int = MAX_PAGE_BYTES):
        self.policy = policy
        self.max_bytes = max_bytes
        self.client = httpx.Client(timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT})

    @classmethod
    def from_settings(cls, settings: Settings) -> Fetcher:
        return cls(AddressPolicy(url_allow_items(settings.url_allow)), timeout=min(settings.request_timeout, 60.0))

    def close(self) -> None:
        self.client.close()

    def fetch(self, url: str, known: PageState | None = None, html: bool = True) -> FetchedPage | None:
        """The page (its body None when unchanged since `known`); None when the server says it is gone.
        WebError when it cannot be fetched now or (`html`) is not an HTML page."""
        headers = {}
        if known is not None:
            if known.etag:
                headers["If-None-Match"] = known.etag
            if known.last_modified:
                headers["If-Modified-Since"] = known.last_modified
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(target)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise WebError(f"{url} redirects to {target}, which is not a web page address.")
            self.policy.check_host(parts.hostname)
            try:
                with self.client.stream("GET", target, headers=headers) as response:
                    self._check_peer(response, parts.hostname)
                    if response.has_redirect_location:
                        target = urljoin(target, response.headers.get("location", ""))
                        continue
                    return self._page(url, response, known, html)
            except httpx.HTTPError as exc:
                raise WebError(f"{url} could not be fetched ({type(exc).__name__}: {exc}): it is tried again at "
                               "the next sync.") from None  # fmt: skip
        raise WebError(f"{url} redirects more than {MAX_REDIRECTS} times: give the address it ends at.")

    def _check_peer(self, response: httpx.Response, host: str) -> None:
        stream = response.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if peer:
            self.policy.check_address(ipaddress.ip_address(str(peer[0]).split("%")[0]), host)

    def _page(self, url: str, response: httpx.Response, known: PageState | None, html: bool) -> FetchedPage | None:
        if response.status_code == 304 and known is not None:
            return FetchedPage(url, known)
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise WebError(f"{url} answered {response.status_code} {response.reason_phrase}: it is tried again at the "
                           "next sync.")  # fmt: skip
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if html and kind and kind not in HTML_TYPES:
            raise WebError(f"{url} is not an HTML page ({kind}): download the file and add it to the knowledge "
                           "base instead.")  # fmt: skip
        body = bytearray()
        for block in response.iter_bytes():
            body.extend(block)
            if len(body) > self.max_bytes:
                raise WebError(f"{url} is larger than {self.max_bytes // (1024 * 1024)} MB: not read.")
        data = bytes(body)
        state = PageState(
            url,
            response.headers.get("etag", ""),
            response.headers.get("last-modified", ""),
            hashlib.sha256(data).hexdigest(),
            now_iso(),
        )
        return FetchedPage(url, state, data)

    def crawl(
        self,
        start: str,
        max_pages: int,
        known: Mapping[str, PageState],
        on_page: Callable[[int, str], None] | None = None,
        stored_body: Callable[[str], bytes | None] | None = None,
    ) -> Crawl:
        """`start`, and with `max_pages` > 1 the pages it links to under it (breadth first, robots.txt obeyed),
        up to `max_pages` in all. An unchanged page's links are read from `stored_body`."""
        crawl = Crawl()
        queue: deque[str] = deque([start])
        seen = {start}
        robots = _Robots(self) if max_pages > 1 else None
        while queue and len(crawl.pages) < max_pages:
            url = queue.popleft()
            if robots is not None and url != start and not robots.allowed(url):
                continue
            if on_page is not None:
                on_page(len(crawl.pages) + 1, url)
            try:
                page = self.fetch(url, known.get(url))
            except WebError as exc:
                crawl.pages.append(FetchedPage(url, known.get(url) or PageState(url, "", "", "", ""), error=str(exc)))
                crawl.complete = False
                continue
            if page is None:
                crawl.gone.append(url)
                continue
            crawl.pages.append(page)
            if max_pages > 1:
                body = page.body if page.body is not None else (stored_body(url) if stored_body else None)
                for link in links(body or b"", url):
                    if link.startswith(start) and link not in seen:
                        seen.add(link)
                        queue.append(link)
        return crawl


def links(body: bytes, base: str) -> list[str]:
    """The http(s) addresses a page links to (<a href>), absolute, without fragments, in page order."""
    if not body.strip():
        return []
    from lxml import etree

    found: list[str] = []

    class _Links:
        def start(self, tag: str, attrib: Mapping[str, str], nsmap: object = None) -> None:
            nonlocal base
            if tag == "base" and attrib.get("href"):
                base = urljoin(base, attrib["href"])
            elif tag == "a" and attrib.get("href"):
                found.append(attrib["href"])

        def end(self, tag: str) -> None:
            pass

        def data(self, data: str) -> None:
            pass

        def close(self) -> None:
            pass

    parser = etree.HTMLParser(target=_Links(), recover=True)
    parser.feed(body)
    parser.close()
    out: list[str] = []
    for href in found:
        try:
            url = canonical_url(urljoin(base, href.strip()))
        except (WebError, ValueError):
            continue
        if url not in out:
            out.append(url)
    return out


class _Robots:
    """A site's robots.txt, read once per host (none, or unreadable: everything allowed)."""

    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher
        self.parsers: dict[str, urllib.robotparser.RobotFileParser] = {}

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        host = f"{parts.scheme}://{parts.netloc}"
        if host not in self.parsers:
            parser = urllib.robotparser.RobotFileParser()
            try:
                page = self.fetcher.fetch(f"{host}/robots.txt", html=False)
            except WebError:
                page = None
            parser.parse((page.body or b"").decode("utf-8", "replace").splitlines() if page else [])
            self.parsers[host] = parser
        return self.parsers[host].can_fetch(USER_AGENT, url)
