"""netspec.lazy: modules that load at their first use, from any thread."""

from __future__ import annotations

import sys
import textwrap
import threading

from netspec.lazy import is_loaded, lazy_import


def test_a_second_thread_waits_for_the_module_the_first_is_loading(tmp_path, monkeypatch):
    # The first thread's load is slow; a second thread asking for an attribute meanwhile
    # must wait for it, not read the half-run module (a network trained in threads).
    (tmp_path / "slow_lazy_module.py").write_text(
        textwrap.dedent(
            """
            import time
            time.sleep(0.3)
            ANSWER = 42
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = lazy_import("slow_lazy_module")
    try:
        assert not is_loaded(module)
        answers: list = []
        errors: list = []

        def read():
            try:
                answers.append(module.ANSWER)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert errors == []
        assert answers == [42, 42, 42]
        assert is_loaded(module)
    finally:
        sys.modules.pop("slow_lazy_module", None)
