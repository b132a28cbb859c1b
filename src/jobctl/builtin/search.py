"""`jobctl search`: the chunks of uploaded documents that best match a query.

Apart from upload.py so that a search imports neither the PDF nor the Markdown parser.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from . import store
from .text import dot, embed, unpack


def search(query: str, collection: str | None = None, top: int = 5) -> list[dict[str, Any]]:
    """The `top` chunks of completed documents most similar to the query, best first."""
    wanted = embed(query)
    if not any(wanted):
        return []
    statement = (
        select(
            store.chunks.c.chunk_index,
            store.chunks.c.text,
            store.chunks.c.embedding,
            store.documents.c.path,
            store.documents.c.title,
            store.documents.c.collection,
        )
        .join(store.documents, store.documents.c.document_id == store.chunks.c.document_id)
        .where(store.documents.c.status == "completed")
    )
    if collection is not None:
        statement = statement.where(store.chunks.c.collection == collection)
    with store.engine().connect() as conn:
        scored = [(dot(wanted, unpack(row.embedding)), row) for row in conn.execute(statement)]
    scored = sorted((pair for pair in scored if pair[0] > 0), key=lambda pair: pair[0], reverse=True)
    return [
        {
            "score": round(score, 4),
            "document": row.path,
            "title": row.title,
            "collection": row.collection,
            "chunk_index": row.chunk_index,
            "text": row.text,
        }
        for score, row in scored[:top]
    ]
