"""The example app's job: run by `jobctl work` (JOBCTL_JOBS=example_jobs), enqueued by the app."""

from jobctl import job, progress


@job("word_count", queue="default", timeout="30s")
def word_count(text: str, top: int = 3) -> dict[str, object]:
    words = text.lower().split()
    progress(50, "counted")
    counts: dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    return {"words": len(words), "top": sorted(counts, key=lambda w: (-counts[w], w))[:top]}
