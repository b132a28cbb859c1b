import shutil

import pytest
from sqlalchemy import select

from jobctl import PermanentError
from jobctl.builtin import store
from jobctl.builtin.search import search
from jobctl.builtin.upload import fixed_chunks, paragraph_chunks, upload

from .conftest import EXAMPLES

STAGES = [10, 30, 50, 70, 90, 100]


@pytest.mark.parametrize(
    "name, fmt, title, chunks",
    [
        ("retry-policy.md", "markdown", "Retry policy for background jobs", 3),
        ("queue-operations.html", "html", "Queue operations runbook", 2),
        ("incident-2025-03-upload-backlog.txt", "text", "Incident report: upload backlog of 14 March 2025", 2),
        ("youtube-quota-guide.pdf", "pdf", "YouTube Data API quota guide", 2),
    ],
)
def test_each_format_goes_through_every_stage(store_backend, run_job, name, fmt, title, chunks):
    result = run_job(upload, str(EXAMPLES / "docs" / name))

    assert (result["format"], result["title"], result["chunks"]) == (fmt, title, chunks)
    assert run_job.progress.percents == STAGES
    assert [message for _, message in run_job.progress][::5] == [f"parsing {name}", "done"]
    with store.engine().connect() as conn:
        document = conn.execute(select(store.documents)).one()
        stored = conn.execute(select(store.chunks.c.text).order_by(store.chunks.c.chunk_index)).scalars().all()
    assert (document.status, document.chunk_count, len(stored)) == ("completed", chunks, chunks)
    assert all(len(text) <= 800 for text in stored)


def test_html_scripts_and_markdown_syntax_are_not_indexed(store_backend):
    upload(str(EXAMPLES / "docs" / "queue-operations.html"))
    upload(str(EXAMPLES / "docs" / "retry-policy.md"))
    with store.engine().connect() as conn:
        text = " ".join(conn.execute(select(store.chunks.c.text)).scalars())
    assert "console.log" not in text and "font-family" not in text
    assert "**" not in text and "## " not in text
    assert "Run jobctl status --live." in text


def test_search_finds_the_passage_that_answers(store_backend):
    for document in (
        "retry-policy.md",
        "queue-operations.html",
        "youtube-quota-guide.pdf",
        "incident-2025-03-upload-backlog.txt",
    ):
        upload(str(EXAMPLES / "docs" / document), collection="docs", chunk_size=400, chunk_overlap=50)

    best = search("search.list costs 100 units", collection="docs", top=3)[0]
    assert best["document"].endswith("youtube-quota-guide.pdf") and "search.list costs 100 units" in best["text"]
    best = search("pause the queues before a deploy", top=1)[0]
    assert best["document"].endswith("queue-operations.html") and "Draining before a deploy" in best["text"]
    assert set(best) == {"score", "document", "title", "collection", "chunk_index", "text"}
    assert search("scanned contracts backlog", collection="docs")[0]["document"].endswith(".txt")
    assert search("the and of", collection="docs") == []  # stopwords only: nothing to match
    assert search("retry", collection="elsewhere") == []


def test_uploading_again_replaces_the_chunks(store_backend, workdir):
    shutil.copy(EXAMPLES / "docs" / "retry-policy.md", workdir / "policy.md")
    first = upload("policy.md", chunk_size=300, chunk_overlap=30)
    second = upload("policy.md", chunk_size=300, chunk_overlap=30, strategy="paragraph")
    assert first["document_id"] == second["document_id"]
    with store.engine().connect() as conn:
        assert len(conn.execute(select(store.documents)).all()) == 1
        assert len(conn.execute(select(store.chunks)).all()) == second["chunks"]


def test_bad_input_is_permanent_and_marks_the_document_failed(store_backend, workdir):
    with pytest.raises(PermanentError, match=r"document missing\.txt does not exist"):
        upload("missing.txt")
    (workdir / "sheet.xlsx").write_bytes(b"PK")
    with pytest.raises(PermanentError, match=r"cannot parse sheet\.xlsx: supported formats are"):
        upload("sheet.xlsx")
    (workdir / "broken.pdf").write_bytes(b"not a pdf at all")
    with pytest.raises(PermanentError, match=r"broken\.pdf"):
        upload("broken.pdf")
    with pytest.raises(PermanentError, match="strategy must be one of fixed, paragraph"):
        upload("missing.txt", strategy="sentences")
    with store.engine().connect() as conn:
        assert set(conn.execute(select(store.documents.c.status)).scalars()) == {"failed"}


def test_fixed_chunks_overlap_on_whole_words():
    text = " ".join(f"word{n:02d}" for n in range(30))  # 30 words of 6 characters
    chunks = fixed_chunks(text, 50, 14)
    assert chunks[0] == "word00 word01 word02 word03 word04 word05 word06"
    assert chunks[1].startswith("word05 word06 ")  # the last 14 characters come again
    assert all(len(chunk) <= 50 for chunk in chunks)
    assert chunks[-1].endswith("word29")


def test_paragraph_chunks_pack_paragraphs_and_cut_long_ones():
    paragraphs = ["a" * 30, "b" * 30, "c" * 30, " ".join(["d" * 9] * 12)]
    chunks = paragraph_chunks(paragraphs, 70, 10)
    assert chunks[:2] == ["a" * 30 + "\n\n" + "b" * 30, "c" * 30]
    assert all(len(chunk) <= 70 for chunk in chunks) and chunks[2].startswith("ddddddddd ")


def test_numbers_given_as_text_on_a_command_line_are_accepted(store_backend):
    result = upload(str(EXAMPLES / "docs" / "retry-policy.md"), chunk_size="400", chunk_overlap="40")
    assert result["chunks"] == 5  # 1,811 characters, 360 new ones per chunk
    with pytest.raises(PermanentError, match="chunk_overlap \\(300\\) must be under half of chunk_size"):
        upload(str(EXAMPLES / "docs" / "retry-policy.md"), chunk_size=400, chunk_overlap=300)
    with pytest.raises(PermanentError, match="chunk_size must be a whole number of at least 20, not 'big'"):
        upload(str(EXAMPLES / "docs" / "retry-policy.md"), chunk_size="big")
