"""Each Lua script states its contract in a header (the KEYS and ARGV it takes, the replies it
gives), names the files it includes, and refuses with codes of scripts.Refusal: these tests
hold the scripts' text to it, so that a header cannot drift from its script."""

from __future__ import annotations

import re

import fakeredis
import pytest

from jobctl.store import keys, scripts
from jobctl.store.scripts import Refusal

SCRIPTS = scripts._script_names()
LUA_FILES = [*SCRIPTS, *(file for file in scripts._included_files() if file != "constants")]
HEADER = re.compile(r"\A--\[\[(.*?)\]\]\n", re.DOTALL)


def header_and_body(script: str) -> tuple[str, str]:
    text = scripts._text(script)
    found = HEADER.match(text)
    assert found, f"{script}.lua does not begin with a --[[ header ]]"
    return found.group(1), scripts._COMMENT.sub("", text[found.end() :])


def indices(text: str, table: str) -> tuple[set[int], int | None]:
    """The fixed indices of KEYS or ARGV `text` names, and where a run of any length starts (a
    header's `KEYS[8...]`; in code, an index computed, or the first of a run read by a helper)."""
    fixed = {int(n) for n in re.findall(rf"\b{table}\[(\d+)\]", text)}
    runs = {int(n) for n in re.findall(rf"\b{table}\[(\d+)\.\.\.\]", text)}
    runs |= {int(n) for n in re.findall(rf"\({table}, (\d+)", text)}  # queue_keys(KEYS, 8, ...)
    computed = re.search(rf"\b{table}\[(?!\d+\])", text) or re.search(rf"#{table}\b(?!\[)", text)
    if computed and not runs:
        runs = {max(fixed, default=0) + 1}
    assert len(runs) <= 1, runs
    return fixed, min(runs) if runs else None


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("table", ["KEYS", "ARGV"])
def test_a_scripts_header_lists_exactly_the_keys_and_arguments_it_reads(script: str, table: str) -> None:
    header, body = header_and_body(script)
    assert "Input:" in header and "Output:" in header
    listed, listed_run = indices(header, table)
    used, used_run = indices(body, table)
    assert listed == used, f"{script}.lua: header lists {table} {sorted(listed)}, code reads {sorted(used)}"
    assert listed == set(range(1, len(listed) + 1)), f"{script}.lua: {table} {sorted(listed)} leave a gap"
    assert listed_run == used_run, f"{script}.lua: {table} from {used_run} on read, header says {listed_run}"
    if listed_run is not None:
        assert listed_run == len(listed) + 1


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_script_replies_the_refusals_its_header_lists(script: str) -> None:
    header, body = header_and_body(script)
    output = header.split("Output:", 1)[1]
    assert set(re.findall(r"Refusal\.(\w+)", body)) == set(re.findall(r"Refusal\.(\w+)", output))


@pytest.mark.parametrize("file", LUA_FILES)
def test_every_refusal_in_the_lua_is_named_from_the_enum(file: str) -> None:
    """Lua names a refusal as Refusal.<NAME>, the table generated from the enum: a member that
    does not exist is caught here, and a refusal spelled as a bare string (which could drift
    from Python's) is not allowed."""
    code = scripts._COMMENT.sub("", scripts._text(file))
    assert set(re.findall(r"Refusal\.(\w+)", code)) <= set(Refusal.__members__)
    strings = set(re.findall(r"'([^'\n]*)'", code)) | set(re.findall(r'"([^"\n]*)"', code))
    assert not strings & {refusal.value for refusal in Refusal}


def test_the_generated_refusals_are_the_enums() -> None:
    """The Lua table the scripts include, run: it holds every member, with its value."""
    db = fakeredis.FakeRedis()
    source = scripts._text("constants") + "local out = {} for name, value in pairs(Refusal) do "
    source += "table.insert(out, name .. '=' .. value) end return out"
    assert sorted(entry.decode() for entry in db.eval(source, 0)) == sorted(f"{r.name}={r.value}" for r in Refusal)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_script_includes_what_it_uses(script: str) -> None:
    """What a script calls is defined in a file it includes (`--- @include "lib"`), not found by
    the loader anywhere."""
    _, body = header_and_body(script)
    included = scripts._includes(script)
    elsewhere = {
        name for file in scripts._included_files() if file not in included for name, _, _ in scripts._definitions(file)
    }
    assert not scripts._words(body) & elsewhere
    assert re.search(r'^--- @include "\w+"$', scripts._text(script), re.MULTILINE) or not included


def test_the_keys_lua_builds_from_a_prefix_are_keys_py_names() -> None:
    """lib.lua builds a job's dependency sets and a rate's `next` key from the prefixes it is
    given; they name what keys.py names."""
    db = fakeredis.FakeRedis()
    wanted = ["dependents_key", "dependencies_key", "old_dependencies_key"]
    chunks = {name: chunk for name, chunk, _ in scripts._definitions("lib")}
    source = "".join(chunks[name] for name in wanted)
    source += "local k = {job = KEYS[1]} return {dependents_key(k, 'j'), dependencies_key(k, 'j'), "
    source += "old_dependencies_key(k, 'j')}"
    built = [key.decode() for key in db.eval(source, 1, keys.job(""))]
    assert built == [keys.dependents("j"), keys.dependencies("j"), keys.old_dependencies("j")]
    assert "window .. ':next'" in chunks["rate_return"]
    window = keys.rate_window(keys.job_rate_limit("j"))
    assert keys.rate_next(keys.job_rate_limit("j")) == window + ":next"
