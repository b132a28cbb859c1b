from sqlalchemy import select

from jobctl.builtin import store
from jobctl.builtin.recommendations import recommendations


def test_rankings_of_the_small_channel(synced_channel, run_job):
    result = run_job(recommendations, synced_channel, top_n=3)

    # mean views 5,000: Monday videos average 10,000 (2.0x), Saturday 3,000, Thursday 2,333
    assert result["weekday"] == [
        {"item": "Monday", "score": 2.0},
        {"item": "Saturday", "score": 0.6},
        {"item": "Thursday", "score": 0.467},
    ]
    assert result["hour"] == [
        {"item": "17:00 UTC", "score": 1.533},
        {"item": "09:00 UTC", "score": 0.65},
        {"item": "03:00 UTC", "score": 0.1},
    ]
    # "sourdough" titles average 7,667 views; "pasta" (1,000) under-performs and is left out
    assert result["keyword"] == [{"item": "sourdough", "score": 1.533}]
    # of the videos outside the top three, only the sourdough pizza shares words with a hit
    assert [entry["item"] for entry in result["similar_video"]] == ["Sourdough pizza at home"]
    assert run_job.progress.percents == [10, 40, 80, 100]


def test_rows_are_replaced_on_rerun(synced_channel):
    recommendations(synced_channel, top_n=2)
    recommendations(synced_channel, top_n=2)
    with store.engine().connect() as conn:
        rows = conn.execute(
            select(
                store.recommendations.c.kind,
                store.recommendations.c.rank,
                store.recommendations.c.item,
                store.recommendations.c.detail,
            ).order_by(store.recommendations.c.kind, store.recommendations.c.rank)
        ).all()
    assert [(kind, rank, item) for kind, rank, item, _ in rows] == [
        ("hour", 1, "17:00 UTC"),
        ("hour", 2, "09:00 UTC"),
        ("keyword", 1, "sourdough"),
        ("similar_video", 1, "Sourdough pizza at home"),
        ("weekday", 1, "Monday"),
        ("weekday", 2, "Saturday"),
    ]
    assert rows[3].detail["similar_to"] == "Sourdough basics"
