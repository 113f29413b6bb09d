"""A workflow job's log holds what went wrong, whatever it was."""

import errno

import pytest

from microdiff.errors import InputError
from microdiff.jobs import job


def test_input_error_is_one_line_in_log_and_terminal(tmp_path, capsys):
    log = tmp_path / "job.log"
    with pytest.raises(SystemExit), job(str(log), "ingest"):
        raise InputError("a.tif", "file not found")
    assert "microdiff ingest: error: a.tif: file not found" in log.read_text()
    assert capsys.readouterr().err.strip() == "microdiff ingest: error: a.tif: file not found"


def test_unexpected_error_leaves_its_traceback_in_the_log(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(ZeroDivisionError), job(str(log), "features"):
        1 / 0  # noqa: B018
    text = log.read_text()
    assert "features: failed" in text and "Traceback" in text and "ZeroDivisionError" in text


def test_disk_full_is_one_line_naming_the_path(tmp_path, capsys):
    log = tmp_path / "job.log"
    with pytest.raises(SystemExit), job(str(log), "restore"):
        raise OSError(errno.ENOSPC, "No space left on device", "results/s1/restored.ome.zarr")
    err = capsys.readouterr().err.strip()
    assert err == "microdiff restore: error: results/s1/restored.ome.zarr: No space left on device"
    assert "Traceback" not in log.read_text()


def test_keep_freed_memory_sets_glibc_malloc_options_or_does_nothing():
    import platform

    from microdiff.jobs import keep_freed_memory

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc
    assert keep_freed_memory() is glibc  # again: the same options, no harm
