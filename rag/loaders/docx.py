"""Word (.docx): paragraphs with headings as Markdown, lists, tables as rows of cells."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from lxml import etree

from rag.errors import LoaderError
from rag.formatting import human_size
from rag.loaders.common import TextBudget, reason, tidy
from rag.schema import LoadedDocument, Section

if TYPE_CHECKING:
    from docx.opc.packuri import PackURI
    from docx.oxml.styles import CT_Style
    from docx.oxml.table import CT_Tbl
    from docx.oxml.text.paragraph import CT_P
    from docx.types import ProvidesStoryPart

# A ZIP is checked before any library opens it: python-docx reads every part whole, so a 65 KB file whose
# image part is 64 MB of zeros cost 140 MB of memory (and 200 MB uploads, gigabytes). The sizes come from
# the ZIP's directory; zipfile stops reading a member at its declared size, so they cannot lie about it.
ZIP_MAX_MEMBERS = 10_000  # a Word file has 20-100 parts; one with many images, a few thousand
ZIP_MAX_BYTES = 256 * 1024 * 1024  # all parts uncompressed: Streamlit takes files up to 200 MB, images barely compress
# Of a part over ZIP_RATIO_FROM bytes. Word's XML compresses 5-30 times, even 30,000 identical paragraphs ~290
# times; zeros and other filler ~1,000 times (deflate's most). So a file expands at most 500 times its size.
ZIP_MAX_RATIO = 500
ZIP_RATIO_FROM = 1024 * 1024  # small parts may be very repetitive and cost nothing


def check_zip(data: bytes, name: str, kind: str = "Word document") -> None:
    """Refuse a ZIP-based file (DOCX, and any other such format) that would expand beyond the limits."""
    fix = f"if it is a real {kind}, open it and save it again (or as PDF) with its images made smaller, or split it."
    try:
        # The entry count from the end record first: ZipFile builds an object per entry (~0.5 KB each), and
        # a 200 MB directory of empty entries would be millions of them. (zipfile's reader of that record
        # is private, but has been there unchanged since Python 2; without it, the count below still holds.)
        end = getattr(zipfile, "_EndRecData", lambda fp: None)(io.BytesIO(data))
        declared = end[4] if end else 0  # _ECD_ENTRIES_TOTAL
        if declared > ZIP_MAX_MEMBERS:
            raise LoaderError(
                f"{name} holds {declared:,} parts, over the limit of {ZIP_MAX_MEMBERS:,} for a {kind}: {fix}"
            )
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LoaderError(
            f"{name} could not be read as a {kind} ({reason(exc)}): it may be damaged, password-protected, "
            "or an old .doc file; open it in Word or LibreOffice and save it again as .docx."
        ) from exc
    if len(members) > ZIP_MAX_MEMBERS:
        raise LoaderError(
            f"{name} holds {len(members):,} parts, over the limit of {ZIP_MAX_MEMBERS:,} for a {kind}: {fix}"
        )
    total = sum(m.file_size for m in members)
    if total > ZIP_MAX_BYTES:
        raise LoaderError(
            f"{name} would expand from {human_size(len(data))} to {human_size(total)}, over the limit of "
            f"{human_size(ZIP_MAX_BYTES)} for a {kind}: {fix}"
        )
    for m in members:
        if m.file_size > ZIP_RATIO_FROM and m.file_size > ZIP_MAX_RATIO * max(m.compress_size, 1):
            raise LoaderError(
                f"{name} looks like a zip bomb: its part {m.filename} would expand from "
                f"{human_size(m.compress_size)} to {human_size(m.file_size)} "
                f"({m.file_size // max(m.compress_size, 1):,} times; real documents stay under {ZIP_MAX_RATIO}), "
                f"so it was not opened: {fix}"
            )


def load_docx(data: bytes, name: str) -> LoadedDocument:
    """The body's paragraphs and tables, in order, read as a stream: time and memory grow with the file's size,
    whatever its number of paragraphs or styles (python-docx looked up the default style by scanning every
    style, for every paragraph, and held the whole XML tree: a 126 KB file of empty paragraphs took 860 MB)."""
    check_zip(data, name)
    budget = TextBudget(name)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            main = _main_part(package)
            styles = _ParagraphStyles(_styles_element(package, main))
            lines: list[str] = []
            for block in _body_blocks(package, main):
                if block.tag == _W_P:
                    line = _docx_paragraph(block, styles)
                    budget.add(line)
                    lines.append(line)
                else:
                    rows = _docx_table(block)
                    budget.add("".join(rows), blocks=max(len(rows), 1))
                    lines.extend(rows)
                    lines.append("")  # keep the table apart from the next paragraph
                _forget(block)
            title = _core_title(package)
    except (LoaderError, MemoryError):
        raise
    except Exception as exc:  # BadZipFile, KeyError on missing parts, XML errors, invalid attribute values
        raise LoaderError(
            f"{name} could not be read as a Word document ({reason(exc)}): it may be damaged, "
            "password-protected, or an old .doc file; open it in Word or LibreOffice and save it again as .docx."
        ) from exc
    text = tidy("\n".join(lines), collapse_spaces=True)
    if not title:  # the first heading, as the Title or Heading 1 style writes it
        title = next((ln.lstrip("\n# ") for ln in lines if ln.lstrip("\n").startswith("# ")), "")
    return LoadedDocument(name=name, kind="docx", sections=[Section(text=text)], title=title)


# -- the package: which part is the document, which its styles (Open Packaging Conventions) --------------------

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_W_P = f"{_W}p"
_W_TBL = f"{_W}tbl"
_W_BODY = f"{_W}body"
_W_STYLE = f"{_W}style"
_W_STYLE_ID = f"{_W}styleId"
_OFFICE_DOCUMENT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
_STYLES = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles"
_CORE_PROPERTIES = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"
_WORD_DOCUMENT = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_RELATIONSHIPS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_CONTENT_TYPES = "{http://schemas.openxmlformats.org/package/2006/content-types}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_STREAM_BYTES = 1 << 16  # the document part is fed to the parser this much at a time


def _xml(package: zipfile.ZipFile, member: str) -> etree._Element:
    """A small part (relationships, content types, styles, properties), whole, with no entity expansion."""
    from docx.oxml.parser import oxml_parser

    return etree.fromstring(package.read(member), oxml_parser)


def _related(package: zipfile.ZipFile, source: PackURI, relationship: str) -> PackURI | None:
    """The part that `source` (\"/\": the package) relates to by this relationship type, if any."""
    from docx.opc.packuri import PackURI

    rels = source.rels_uri.membername
    if rels not in package.namelist():
        return None
    for rel in _xml(package, rels).iter(_RELATIONSHIPS):
        if rel.get("Type") == relationship and rel.get("TargetMode") != "External":
            return PackURI.from_rel_ref(source.baseURI, rel.get("Target", ""))
    return None


def _main_part(package: zipfile.ZipFile) -> PackURI:
    """The main document part, checked to be a Word document's (as python-docx checks it)."""
    from docx.opc.packuri import PackURI

    main = _related(package, PackURI("/"), _OFFICE_DOCUMENT)
    if main is None:
        raise KeyError("no main document part")
    types = _xml(package, "[Content_Types].xml")
    overrides = {o.get("PartName", "").lower(): o.get("ContentType") for o in types.iter(f"{_CONTENT_TYPES}Override")}
    defaults = {d.get("Extension", "").lower(): d.get("ContentType") for d in types.iter(f"{_CONTENT_TYPES}Default")}
    content_type = overrides.get(str(main).lower()) or defaults.get(main.ext.lower())
    if content_type != _WORD_DOCUMENT:
        raise ValueError(f"not a Word file, content type is {content_type!r}")
    return main


def _styles_element(package: zipfile.ZipFile, main: PackURI) -> etree._Element:
    """The document's styles, or python-docx's defaults when it has none (as python-docx resolves them)."""
    styles = _related(package, main, _STYLES)
    if styles is None:
        from docx.parts.styles import StylesPart

        return etree.fromstring(StylesPart._default_styles_xml(), _oxml_parser())
    return _xml(package, styles.membername)


def _core_title(package: zipfile.ZipFile) -> str:
    from docx.opc.packuri import PackURI

    core = _related(package, PackURI("/"), _CORE_PROPERTIES)
    if core is None or core.membername not in package.namelist():
        return ""
    element = _xml(package, core.membername).find(_DC_TITLE)
    return " ".join((element.text or "").split()) if element is not None else ""


def _oxml_parser() -> etree.XMLParser:
    from docx.oxml.parser import oxml_parser

    return oxml_parser


def _body_blocks(package: zipfile.ZipFile, main: PackURI) -> Iterator[etree._Element]:
    """The body's own paragraphs and tables (not those inside tables or other wrappers, as python-docx gives
    them), each as python-docx's element once it is complete, read from the part as a stream."""
    from docx.oxml.parser import element_class_lookup

    parser = etree.XMLPullParser(
        events=("end",), tag=(_W_P, _W_TBL), remove_blank_text=True, resolve_entities=False, no_network=True
    )
    parser.set_element_class_lookup(element_class_lookup)
    with package.open(main.membername) as stream:
        while True:
            piece = stream.read(_STREAM_BYTES)
            if piece:
                parser.feed(piece)
            else:
                parser.close()
            for _, element in parser.read_events():
                parent = element.getparent()
                if parent is not None and parent.tag == _W_BODY:
                    yield element
            if not piece:
                return


def _forget(block: etree._Element) -> None:
    """Free what has been read: the block's content and everything before it in the body."""
    block.clear(keep_tail=True)
    parent = block.getparent()
    while parent is not None and block.getprevious() is not None:
        del parent[0]


class _ParagraphStyles:
    """Style ids to names, looked up once for the whole document (as python-docx's Styles.get_by_id: the first
    style with the id, the default paragraph style when it is missing or not a paragraph style)."""

    def __init__(self, styles: etree._Element) -> None:
        self._by_id: dict[str, CT_Style] = {}
        for style in styles.iterchildren(_W_STYLE):
            style_id = style.get(_W_STYLE_ID)
            if style_id is not None:
                self._by_id.setdefault(style_id, style)
        self._styles = styles
        self._default: CT_Style | None = None
        self._default_found = False
        self._names: dict[str | None, str] = {}
        self._markup: dict[str | None, tuple[int, bool]] = {}

    def markup(self, style_id: str | None) -> tuple[int, bool]:
        """(heading level, 0 for none; a bulleted list item?) of a paragraph of this style."""
        if style_id not in self._markup:
            name = self.name(style_id)
            self._markup[style_id] = (_heading_level(name), name.startswith("List Bullet"))
        return self._markup[style_id]

    def name(self, style_id: str | None) -> str:
        from docx.enum.style import WD_STYLE_TYPE
        from docx.styles import BabelFish

        if style_id not in self._names:
            style = self._by_id.get(style_id) if style_id else None
            if style is None or style.type != WD_STYLE_TYPE.PARAGRAPH:
                style = self._default_style()
            internal = style.name_val if style is not None else None
            self._names[style_id] = BabelFish.internal2ui(internal) if internal else ""
        return self._names[style_id]

    def _default_style(self) -> CT_Style | None:
        from docx.enum.style import WD_STYLE_TYPE

        if not self._default_found:  # the last paragraph style marked default, as the specification says
            defaults = [
                s for s in self._styles.iterchildren(_W_STYLE) if s.type == WD_STYLE_TYPE.PARAGRAPH and s.default
            ]
            self._default = defaults[-1] if defaults else None
            self._default_found = True
        return self._default


_W_R = f"{_W}r"
_W_PPR = f"{_W}pPr"
_W_PSTYLE = f"{_W}pStyle"
_W_VAL = f"{_W}val"
_W_HYPERLINK = f"{_W}hyperlink"
# What a run's text is made of, each element giving its own text equivalent (python-docx's CT_R.text).
_RUN_CONTENT = frozenset(f"{_W}{tag}" for tag in ("br", "cr", "noBreakHyphen", "ptab", "t", "tab"))


def _run_text(run: etree._Element) -> str:
    return "".join(str(e) for e in run if e.tag in _RUN_CONTENT)


def _paragraph_text(paragraph: CT_P) -> str:
    """python-docx's Paragraph.text (its runs and its hyperlinks' runs, in order) without compiling an XPath
    expression for every paragraph and run, which made 40,000 paragraphs take seconds."""
    parts: list[str] = []
    for child in paragraph:
        if child.tag == _W_R:
            parts.append(_run_text(child))
        elif child.tag == _W_HYPERLINK:
            parts.extend(_run_text(run) for run in child if run.tag == _W_R)
    return "".join(parts)


def _paragraph_style_id(paragraph: CT_P) -> str | None:
    """`w:pPr/w:pStyle/@w:val` (python-docx's CT_P.style, read without its generic child lookups)."""
    properties = paragraph.find(_W_PPR)
    style = properties.find(_W_PSTYLE) if properties is not None else None
    if style is None:
        return None
    value = style.get(_W_VAL)
    if value is None:
        raise ValueError("a paragraph style without its w:val attribute")
    return value


def _docx_paragraph(paragraph: CT_P, styles: _ParagraphStyles) -> str:
    text = _paragraph_text(paragraph).strip()
    if not text:
        return ""
    level, bullet = styles.markup(_paragraph_style_id(paragraph))
    if level:
        # A blank line before headings keeps them at the start of a chunk where possible.
        return f"\n{'#' * level} {text}"
    if bullet:
        return f"- {text}"
    return text


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return min(int(match.group(1)), 6) if match else 0


def _docx_table(element: CT_Tbl) -> list[str]:
    from docx.table import Table

    rows: list[str] = []
    for row in Table(element, cast("ProvidesStoryPart", None)).rows:
        cells: list[str] = []
        previous: object = None
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans; show it once.
            if cell._tc is previous:
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return rows
