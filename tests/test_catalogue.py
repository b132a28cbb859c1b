import sys

import pytest

import jobctl
from jobctl.errors import ConfigError, UnknownJob
from jobctl.jobs import catalogue, signatures


def test_decorator_registers_with_settings():
    @jobctl.job("test_resize", queue="analytics", max_retries=1, timeout="2m")
    def resize(path: str, width: int = 800) -> dict:
        return {}

    spec = catalogue.get("test_resize")
    assert (spec.queue, spec.max_retries, spec.timeout) == ("analytics", 1, 120)
    assert signatures.described(spec) == "test_resize(path: str, width: int = 800) -> dict"
    assert resize("x") == {}  # the function itself is unchanged


def test_one_name_one_function():
    @jobctl.job("test_taken")
    def first():
        pass

    with pytest.raises(ValueError, match="already registered"):

        @jobctl.job("test_taken")
        def second():
            pass


def test_unknown_job_lists_the_registered_ones():
    catalogue.load()
    with pytest.raises(UnknownJob, match=r"unknown job 'nope' \(registered jobs: .*channel_sync"):
        catalogue.get("nope")


def test_builtin_jobs_are_registered():
    catalogue.load()
    names = {spec.name for spec in catalogue.all_jobs()}
    assert {"channel_sync", "analytics", "recommendations", "notifications", "visualize", "import", "upload"} <= names


def test_user_modules_are_imported_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "my_jobs_mod.py").write_text(
        "from jobctl import job\n@job('test_from_cwd')\ndef from_cwd():\n    return 1\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    catalogue.load("my_jobs_mod")
    assert catalogue.get("test_from_cwd").module == "my_jobs_mod"


def test_user_module_errors_are_config_errors(tmp_path, monkeypatch):
    (tmp_path / "broken_jobs_mod.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="cannot import job module 'no_such_mod'"):
        catalogue.load("no_such_mod")
    with pytest.raises(ConfigError, match="job module 'broken_jobs_mod' failed on import: RuntimeError: boom"):
        catalogue.load("broken_jobs_mod")


def test_builtin_jobs_resolve_to_what_they_declare():
    catalogue.load()
    for name in ("channel_sync", "analytics", "recommendations", "notifications", "visualize", "import", "upload"):
        declared = catalogue.get(name)
        resolved = catalogue.resolve(name)
        assert resolved.func is not None and resolved.func.__module__ == declared.module
        assert (resolved.queue, resolved.timeout) == (declared.queue, declared.timeout)


def test_a_catalogue_of_its_own_holds_its_jobs_apart_from_the_process_catalogue():
    def crop(path: str) -> str:
        return path

    own = catalogue.Catalogue()
    own.add(catalogue.JobSpec("test_own_crop", crop, module=crop.__module__))
    assert own.get("test_own_crop").func is crop and "test_own_crop" in own
    assert not catalogue.is_registered("test_own_crop")
    with pytest.raises(UnknownJob, match="registered jobs: none"):
        catalogue.Catalogue().get("test_own_crop")
