import xml.etree.ElementTree as ElementTree
from pathlib import Path

from sqlalchemy import select, update

from jobctl.builtin import store
from jobctl.builtin.visualize import compact, visualize

SVG = "{http://www.w3.org/2000/svg}"


def test_chart_is_an_svg_of_the_history_and_top_videos(synced_channel, workdir, run_job):
    result = run_job(visualize, synced_channel)

    path = Path(result["path"])
    assert path.parent == workdir / ".jobctl" / "charts"
    assert path.name.startswith(f"{synced_channel}-") and path.suffix == ".svg"
    assert (result["cached"], result["days"], result["top_videos"]) == (False, 29, 6)
    root = ElementTree.parse(path).getroot()
    texts = [element.text for element in root.iter(f"{SVG}text")]
    assert "Small Test Kitchen" in texts and "Sourdough basics" in texts
    assert {"2025-05-01", "2025-05-29", "1.0K", "850", "82.0K"} <= set(texts)
    subscribers, _views = root.iter(f"{SVG}polyline")
    assert len(subscribers.get("points").split()) == 29
    assert len(list(root.iter(f"{SVG}rect"))) == 1 + 2 + 6  # background, two line frames, six bars
    assert run_job.progress.percents == [10, 40, 80, 100]
    with store.engine().connect() as conn:
        assert conn.execute(select(store.charts.c.path)).scalar() == str(path)


def test_unchanged_data_reuses_the_chart_and_new_data_replaces_it(synced_channel, workdir):
    first = visualize(synced_channel)
    assert visualize(synced_channel) == {**first, "cached": True}

    with store.engine().begin() as conn:
        conn.execute(update(store.videos).where(store.videos.c.title == "Pasta night").values(views=900))
    changed = visualize(synced_channel)
    assert changed["path"] != first["path"] and not changed["cached"]
    assert [p.name for p in (workdir / ".jobctl" / "charts").iterdir()] == [Path(changed["path"]).name]


def test_compact_numbers():
    assert [compact(n) for n in (999, 1234, 3_400_000, 2_100_000_000)] == ["999", "1.2K", "3.4M", "2.1B"]
