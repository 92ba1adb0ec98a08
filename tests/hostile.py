"""Files made to cost a parser as much as possible (README, "Limits"): generated here, in the test, never shipped."""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    '<Override PartName="/word/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>'
    "</Types>"
)
_PACKAGE_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="word/document.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
    "</Relationships>"
)
_DOCUMENT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="styles.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles"/>'
    "</Relationships>"
)


def docx_bytes(
    paragraphs: int, styles: int = 0, text: str = "Paragraph {i} of a long report.", word_styles: bool = False
) -> bytes:
    """A Word file of `paragraphs` body paragraphs (empty when `text` is "") and `styles` paragraph styles
    besides Normal and Heading 1 (or, with `word_styles`, the 164 styles of Word's default template, as
    python-docx ships it); every tenth paragraph is a heading."""
    body = io.StringIO()
    marks = random.Random(19)
    for i in range(paragraphs):
        style = '<w:pPr><w:pStyle w:val="Heading1"/></w:pPr>' if text and i % 10 == 0 else ""
        run = f"<w:r><w:t>{text.format(i=i)}</w:t></w:r>" if text else ""
        if style or run:
            body.write(f"<w:p>{style}{run}</w:p>")
        elif i % 1500:
            body.write("<w:p/>")
        else:  # Word's revision marks, now and then: the XML compresses ~400 times, under the zip-bomb check's 500
            body.write(f'<w:p w:rsidR="{marks.getrandbits(32):08X}"/>')
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{W}">'
        f"<w:body>{body.getvalue()}</w:body></w:document>"
    )
    extra = "".join(
        f'<w:style w:type="paragraph" w:styleId="Extra{i}"><w:name w:val="Extra {i}"/></w:style>' for i in range(styles)
    )
    styles_xml = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:styles xmlns:w="{W}">{extra}'
        '<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/></w:style>'
        '<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style></w:styles>'
    )
    if word_styles:
        import docx

        with zipfile.ZipFile(Path(docx.__file__).parent / "templates" / "default.docx") as template:
            styles_xml = template.read("word/styles.xml").decode("utf-8")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
        z.writestr("_rels/.rels", _PACKAGE_RELS)
        z.writestr("word/_rels/document.xml.rels", _DOCUMENT_RELS)
        z.writestr("word/document.xml", document)
        z.writestr("word/styles.xml", styles_xml)
    return out.getvalue()


def write_docx(
    path: Path,
    paragraphs: int,
    styles: int = 0,
    text: str = "Paragraph {i} of a long report.",
    word_styles: bool = False,
) -> Path:
    path.write_bytes(docx_bytes(paragraphs, styles, text, word_styles))
    return path
