"""Sections → chunks with stable ids, using LangChain's recursive splitter."""

from __future__ import annotations

from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

from rag.schema import Chunk, LoadedDocument


def make_splitter(kind: str, chunk_size: int, chunk_overlap: int) -> RecursiveCharacterTextSplitter:
    """Markdown splits at headings first; everything else at paragraphs, lines, sentences, words."""
    if kind == "markdown":
        return RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )
    return RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
        keep_separator="end",
    )


def chunk_id(doc_id: str, position: int) -> str:
    return f"{doc_id}:{position:05d}"


def chunk_document(doc: LoadedDocument, doc_id: str, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Split every section on its own so that a chunk never spans two pages."""
    splitter = make_splitter(doc.kind, chunk_size, chunk_overlap)
    chunks: list[Chunk] = []
    for section in doc.sections:
        for piece in splitter.split_text(section.text):
            text = piece.strip()
            if not text:
                continue
            position = len(chunks)
            chunks.append(
                Chunk(
                    id=chunk_id(doc_id, position),
                    doc_id=doc_id,
                    text=text,
                    source=doc.name,
                    page=section.page,
                    position=position,
                )
            )
    return chunks
