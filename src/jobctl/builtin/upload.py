"""upload: turn a document into searchable chunks (search.py finds the ones that match a query).

The pipeline of the seed's upload worker, with its progress stages:

- register the document (`documents`, status processing), then
- 10% parse: .txt; .md (rendered by markdown-it-py, then read as HTML); .html/.htm (stdlib
  html.parser, scripts and styles skipped); .pdf (pypdf, text layer only: a scanned PDF has none)
- 30% chunk: `fixed` (chunk_size characters, the last chunk_overlap of them repeated at the start
  of the next chunk, cut at word boundaries) or `paragraph` (blank-line paragraphs packed up to
  chunk_size; a longer paragraph is cut as `fixed`)
- 50% embed: a feature-hashing vector per chunk (see text.py: deterministic, nothing downloaded)
- 70% store: the document's chunks and vectors replace any it had
- 90% finalize: the document is marked completed, and becomes visible to search
- 100% done

A document's id is a hash of its collection and absolute path, so uploading the same file again
replaces its chunks rather than adding a copy. A missing file, an unsupported format, a PDF
without text or invalid chunking arguments are PermanentErrors.

The document store is called behind the circuit breaker `document_store` when queue.yml declares
it (`jobctl init`'s does): once the store keeps failing, uploads wait out its cool-down in the
scheduled set, their attempts unused, instead of each failing against a store that is down.
"""

from __future__ import annotations

import hashlib
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

from markdown_it import MarkdownIt
from pypdf import PdfReader
from pypdf.errors import PdfReadError
from sqlalchemy import delete, update

from .. import PermanentError, breaker, job, progress
from . import example_data, store
from .arguments import whole_number
from .text import embed, pack

STRATEGIES = ("fixed", "paragraph")
STORE_BREAKER = "document_store"  # queue.yml's breaker on the store, used when declared
FORMATS = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".pdf": "pdf"}


@job("upload", queue="default", timeout="10m")
def upload(
    path: str,
    collection: str = "default",
    chunk_size: int = 800,
    chunk_overlap: int = 100,
    strategy: str = "fixed",
) -> dict:
    """Parse, chunk, embed and store a document so that `jobctl search` finds its passages."""
    chunk_size, chunk_overlap = _check_arguments(chunk_size, chunk_overlap, strategy)
    with breaker(STORE_BREAKER, optional=True):
        return _upload(path, collection, chunk_size, chunk_overlap, strategy)


def _upload(path: str, collection: str, chunk_size: int, chunk_overlap: int, strategy: str) -> dict:
    file = example_data.resolve(path)
    document_id = hashlib.sha256(f"{collection}\0{file.resolve()}".encode()).hexdigest()[:24]
    format_ = FORMATS.get(file.suffix.lower())
    with store.engine().begin() as conn:
        store.upsert(
            conn,
            store.documents,
            [
                {
                    "document_id": document_id,
                    "collection": collection,
                    "path": str(file),
                    "title": None,
                    "format": format_ or file.suffix.lower().lstrip(".") or "unknown",
                    "status": "processing",
                    "chunk_count": 0,
                    "strategy": strategy,
                    "chunk_size": chunk_size,
                    "chunk_overlap": chunk_overlap,
                    "error": None,
                    "registered_at": store.utcnow(),
                    "completed_at": None,
                }
            ],
        )
    try:
        return _ingest(file, format_, document_id, collection, chunk_size, chunk_overlap, strategy)
    except Exception as exc:
        with store.engine().begin() as conn:
            conn.execute(
                update(store.documents)
                .where(store.documents.c.document_id == document_id)
                .values(status="failed", error=f"{type(exc).__name__}: {exc}")
            )
        raise


def _ingest(
    file: Path,
    format_: str | None,
    document_id: str,
    collection: str,
    chunk_size: int,
    chunk_overlap: int,
    strategy: str,
) -> dict:
    progress(10, f"parsing {file.name}")
    if not file.is_file():
        raise PermanentError(f"document {file} does not exist")
    if format_ is None:
        raise PermanentError(f"cannot parse {file.name}: supported formats are {', '.join(sorted(FORMATS))}")
    title, paragraphs = PARSERS[format_](file)
    if not paragraphs:
        raise PermanentError(f"{file} has no text to index (a scanned PDF needs OCR first)")

    progress(30, f"chunking ({strategy}, {chunk_size} characters)")
    if strategy == "fixed":
        pieces = fixed_chunks(" ".join(paragraphs), chunk_size, chunk_overlap)
    else:
        pieces = paragraph_chunks(paragraphs, chunk_size, chunk_overlap)

    progress(50, f"embedding {len(pieces)} chunks")
    vectors = [pack(embed(piece)) for piece in pieces]

    progress(70, "storing chunks and vectors")
    with store.engine().begin() as conn:
        conn.execute(delete(store.chunks).where(store.chunks.c.document_id == document_id))
        conn.execute(
            store.chunks.insert(),
            [
                {
                    "document_id": document_id,
                    "chunk_index": index,
                    "collection": collection,
                    "text": piece,
                    "embedding": vector,
                }
                for index, (piece, vector) in enumerate(zip(pieces, vectors))
            ],
        )

    progress(90, "finalizing")
    with store.engine().begin() as conn:
        conn.execute(
            update(store.documents)
            .where(store.documents.c.document_id == document_id)
            .values(status="completed", title=title, chunk_count=len(pieces), completed_at=store.utcnow())
        )
    progress(100, "done")
    return {
        "document_id": document_id,
        "path": str(file),
        "collection": collection,
        "format": format_,
        "title": title,
        "chunks": len(pieces),
        "characters": sum(len(paragraph) for paragraph in paragraphs),
    }


def _check_arguments(chunk_size: object, chunk_overlap: object, strategy: str) -> tuple[int, int]:
    if strategy not in STRATEGIES:
        raise PermanentError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    size = whole_number("chunk_size", chunk_size, minimum=20)
    overlap = whole_number("chunk_overlap", chunk_overlap)
    if overlap >= size // 2:
        raise PermanentError(f"chunk_overlap ({overlap}) must be under half of chunk_size ({size})")
    return size, overlap


def fixed_chunks(text: str, size: int, overlap: int) -> list[str]:
    """Windows of at most `size` characters over single-spaced text, cut between words."""
    chunks, start = [], 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            # Cut at the last space, but far enough in that the next window moves forward.
            cut = text.rfind(" ", start + overlap + 1, end + 1)
            if cut != -1:
                end = cut
        chunks.append(text[start:end].strip())
        if end >= len(text):
            break
        start = end - overlap
        if overlap and not text[start - 1].isspace():
            # Begin the overlap on a whole word.
            space = text.find(" ", start, end)
            start = space + 1 if space != -1 else start
    return [chunk for chunk in chunks if chunk]


def paragraph_chunks(paragraphs: list[str], size: int, overlap: int) -> list[str]:
    """Consecutive paragraphs packed into chunks of at most `size` characters."""
    chunks, current = [], ""
    for paragraph in paragraphs:
        pieces = fixed_chunks(paragraph, size, overlap) if len(paragraph) > size else [paragraph]
        for piece in pieces:
            if current and len(current) + 2 + len(piece) <= size:
                current = f"{current}\n\n{piece}"
            else:
                if current:
                    chunks.append(current)
                current = piece
    if current:
        chunks.append(current)
    return chunks


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, each on one line with single spaces."""
    blocks = text.replace("\r\n", "\n").split("\n\n")
    return [" ".join(block.split()) for block in blocks if block.strip()]


class _HTMLText(HTMLParser):
    """The readable text of an HTML page: block elements become paragraphs, scripts vanish."""

    BLOCKS: ClassVar[set[str]] = {
        "p",
        "div",
        "section",
        "article",
        "header",
        "footer",
        "main",
        "nav",
        "aside",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "table",
        "pre",
        "blockquote",
        "dt",
        "dd",
        "figcaption",
    }
    HIDDEN: ClassVar[set[str]] = {"script", "style", "noscript", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.body: list[str] = []
        self.title: list[str] = []
        self.first_heading: list[str] = []
        self._hidden = 0
        self._in_title = False
        self._heading = "before"  # then "inside" and "after" the first <h1>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.HIDDEN:
            self._hidden += 1
        elif tag in self.BLOCKS:
            self.body.append("\n\n")
        if tag == "h1" and self._heading == "before":
            self._heading = "inside"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self.BLOCKS:
            self.body.append("\n\n")
        if tag == "h1" and self._heading == "inside":
            self._heading = "after"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            self.body.append(data)
            if self._heading == "inside":
                self.first_heading.append(data)


def _read_html(markup: str) -> tuple[str | None, list[str]]:
    parser = _HTMLText()
    parser.feed(markup)
    parser.close()
    title = " ".join("".join(parser.title or parser.first_heading).split())
    return title or None, _paragraphs("".join(parser.body))


def _parse_text(file: Path) -> tuple[str | None, list[str]]:
    paragraphs = _paragraphs(file.read_text(encoding="utf-8", errors="replace"))
    return (paragraphs[0][:120] if paragraphs else None), paragraphs


def _parse_markdown(file: Path) -> tuple[str | None, list[str]]:
    html = MarkdownIt("commonmark").render(file.read_text(encoding="utf-8", errors="replace"))
    return _read_html(html)


def _parse_html(file: Path) -> tuple[str | None, list[str]]:
    return _read_html(file.read_text(encoding="utf-8", errors="replace"))


def _parse_pdf(file: Path) -> tuple[str | None, list[str]]:
    try:
        reader = PdfReader(file)
        if reader.is_encrypted:
            raise PermanentError(f"{file} is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except PdfReadError as exc:
        raise PermanentError(f"{file} is not a readable PDF: {exc}") from None
    return title or file.stem, _paragraphs("\n\n".join(pages))


PARSERS = {"text": _parse_text, "markdown": _parse_markdown, "html": _parse_html, "pdf": _parse_pdf}
