"""Web pages by address, against a real HTTP server on this machine that the tests start: a page read by the HTML
loader (headings and tables kept), fetched again on sync with its validators and indexed again only when it
changed, removed when the server says it is gone; a site's pages under a prefix up to a limit (robots.txt obeyed);
addresses on this machine and private networks refused unless allowed."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

import pytest

from rag.config import Settings
from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.kb import open_store
from rag.sources import SourceStore
from rag.sync import Syncer
from rag.web import AddressPolicy, WebError, canonical_url, links
from tests.servers import Site
from tests.test_sync import CountingEmbedder

PAGE = b"""<!doctype html><html><head><title>Lantern keepers</title></head><body>
<nav><a href="/docs/a">A</a></nav>
<h1>Lantern keepers</h1><p>The north lantern is lit at dusk by Ada Finch.</p>
<h2>Shifts</h2>
<table><tr><th>Keeper</th><th>Shift</th></tr><tr><td>Ada Finch</td><td>dusk</td></tr>
<tr><td>Bo Lind</td><td>dawn</td></tr></table>
</body></html>"""


def html(text: str, links_to: tuple[str, ...] = ()) -> tuple[str, bytes]:
    anchors = "".join(f'<a href="{href}">{href}</a> ' for href in links_to)
    body = f"<html><body><h1>{text}</h1><p>{text} page.</p>{anchors}</body></html>"
    return ("text/html; charset=utf-8", body.encode())


class WebKb:
    def __init__(self, tmp_path: Path, embedder: Embedder, allow: str = "127.0.0.1") -> None:
        self.settings = Settings(data_dir=tmp_path / "data", url_allow=allow)
        self.store = open_store(self.settings)
        self.sources = SourceStore(self.settings.kb_dir)
        self.syncer = Syncer(self.settings, self.store, Ingestor(self.store, embedder, 600, 100), self.sources)

    def names(self) -> list[str]:
        return sorted(d.name for d in self.store.documents())


def test_a_page_is_read_with_its_headings_and_table_and_fetched_again_only_when_it_changed(
    tmp_path: Path, site: Site, embedder: Embedder
) -> None:
    counting = CountingEmbedder(embedder)
    site.pages["/keepers"] = ("text/html", PAGE)
    kb = WebKb(tmp_path, counting)
    source = kb.sources.add_web(site.url("/keepers#top"))
    assert source.location == site.url("/keepers")  # no fragment: one page, one document
    assert kb.syncer.sync().summary() == "1 added, 0 unchanged"
    [doc] = kb.store.documents()
    assert (doc.name, doc.kind, doc.title) == (site.url("/keepers"), "html", "Lantern keepers")
    text = "\n".join(c.indexed_text for c in kb.store.chunks_of(doc.doc_id))
    assert "Shifts" in text and "Keeper | Shift" in text and "Ada Finch | dusk" in text and "Bo Lind | dawn" in text
    [hit] = kb.store.query(counting.embed_query("Who lights the north lantern?"), 1)
    assert hit.chunk.source == site.url("/keepers")

    embedded = len(counting.texts)
    assert kb.syncer.sync().summary() == "0 added, 1 unchanged"
    assert site.requests[-1] == ("/keepers", '"' + hashlib.sha256(PAGE).hexdigest()[:16] + '"')  # answered 304
    site.pages["/keepers"] = ("text/html", PAGE.replace(b"Ada Finch", b"Cy Moor"))
    assert kb.syncer.sync().summary() == "0 added, 1 changed, 0 unchanged"
    assert "Cy Moor" in kb.store.chunks_of(kb.store.documents()[0].doc_id)[0].text
    assert len(counting.texts) > embedded
    del site.pages["/keepers"]
    assert kb.syncer.sync().summary() == "0 added, 1 removed, 0 unchanged"
    assert kb.names() == []


def test_a_sites_pages_under_a_prefix_are_read_up_to_the_limit_and_robots_txt_is_obeyed(
    tmp_path: Path, site: Site, embedder: Embedder
) -> None:
    site.pages["/docs/"] = html("Index", ("a", "b", "private/x", "/other/page", "https://elsewhere.example/x"))
    site.pages["/docs/a"] = html("Alpha", ("/docs/c",))
    site.pages["/docs/b"] = html("Bravo")
    site.pages["/docs/c"] = html("Charlie")
    site.pages["/docs/private/x"] = html("Private")
    site.pages["/other/page"] = html("Other")
    site.pages["/robots.txt"] = ("text/plain", b"User-agent: *\nDisallow: /docs/private/\n")
    kb = WebKb(tmp_path, embedder)
    kb.sources.add_web(site.url("/docs/"), max_pages=3)
    report = kb.syncer.sync()
    assert report.counts["added"] == 3
    assert kb.names() == [site.url(p) for p in ("/docs/", "/docs/a", "/docs/b")]  # breadth first, three pages
    fetched = {path for path, _ in site.requests}
    assert "/other/page" not in fetched and "/docs/private/x" not in fetched and "/docs/c" not in fetched

    site.pages["/docs/"] = html("Index", ("b",))  # a no longer linked: no longer one of the site's pages
    kb.syncer.sync()
    assert kb.names() == [site.url(p) for p in ("/docs/", "/docs/b")]


def test_addresses_on_this_machine_or_a_private_network_are_refused_unless_allowed(
    tmp_path: Path, site: Site, embedder: Embedder
) -> None:
    site.pages["/page"] = html("Local")
    kb = WebKb(tmp_path, embedder, allow="")
    kb.sources.add_web(site.url("/page"))
    report = kb.syncer.sync()
    [failure] = report.failures
    assert "127.0.0.1 is on this machine (127.0.0.1): such addresses are refused" in failure.message
    assert "RAG_URL_ALLOW" in failure.message and kb.names() == [] and site.requests == []  # never connected

    policy = AddressPolicy(["10.0.0.0/8", "intranet.example"])
    policy.check_host("10.1.2.3")
    policy.check_host("intranet.example")  # allowed by name: not even resolved
    policy.check_host("8.8.8.8")
    for refused in ("192.168.1.1", "169.254.169.254", "172.16.0.1", "::1", "fd00::1", "100.64.0.1", "localhost"):
        with pytest.raises(WebError, match="such addresses are refused"):
            policy.check_host(refused)
    with pytest.raises(WebError, match="on this machine"):
        policy.check_address(ipaddress.ip_address("127.0.0.1"), "rebound.example")  # the address connected to

    # A page allowed here that redirects to a private address is not followed there.
    site.redirects["/jump"] = "http://10.9.9.9/admin"
    allowed = WebKb(tmp_path / "allowed", embedder, allow="127.0.0.1")
    allowed.sources.add_web(site.url("/jump"))
    [failure] = allowed.syncer.sync().failures
    assert failure.message.startswith("10.9.9.9 is on a private network (10.9.9.9): such addresses are refused")


def test_a_page_that_is_not_html_or_not_reachable_gets_a_line_and_nothing_else_changes(
    tmp_path: Path, site: Site, embedder: Embedder
) -> None:
    site.pages["/report.pdf"] = ("application/pdf", b"%PDF-1.7 ...")
    site.pages["/ok"] = html("Fine")
    kb = WebKb(tmp_path, embedder)
    kb.sources.add_web(site.url("/report.pdf"))
    kb.sources.add_web(site.url("/ok"))
    report = kb.syncer.sync()
    assert [(f.name, f.message) for f in report.failures] == [
        (
            site.url("/report.pdf"),
            "is not an HTML page (application/pdf): download the file and add it to the knowledge base instead",
        )
    ]
    assert kb.names() == [site.url("/ok")]
    site.pages["/ok"] = ("text/html", b"<html><body>Server error page</body></html>")
    site.redirects["/ok"] = "/ok-loop"
    site.redirects["/ok-loop"] = "/ok"
    report = kb.syncer.sync()
    assert "redirects more than 5 times" in report.failures[-1].message
    assert kb.names() == [site.url("/ok")]  # unreachable now: kept as it was


def test_addresses_and_links_are_read_as_a_browser_would() -> None:
    assert canonical_url(" HTTPS://Example.ORG:8443/a?b=1#frag ") == "https://example.org:8443/a?b=1"
    assert canonical_url("http://example.org") == "http://example.org/"
    for bad in ("ftp://example.org/x", "example.org", "javascript:alert(1)", "http://"):
        with pytest.raises(WebError, match="web address"):
            canonical_url(bad)
    page = b'<base href="http://h/docs/"><a href="a#x">a</a><a href="/b">b</a><a href="mailto:x@y">m</a><a href="a">'
    assert links(page, "http://h/index") == ["http://h/docs/a", "http://h/b"]
