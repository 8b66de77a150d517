"""Child process of the bad-input corpus: runs the named cases in order, one protocol line each.

    python tests/bad_inputs/run_cases.py CASE...

Prints ``@@corpus start NAME`` before a case and ``@@corpus result {json}`` after it; if the
process dies in between, the parent counts that case as a crash.
"""
import json
import os
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cases import CASES  # noqa: E402

import nimble  # noqa: E402

CLEAR = (nimble.NimbleError, OSError, MemoryError)


def outcome_of(expect: str, fn) -> tuple:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
    except AssertionError as exc:
        return "silent", f"wrong answer: {exc}"[:300]
    except SystemExit as exc:
        if exc.code in (0, None):
            return ("correct" if expect == "correct" else "silent"), "exit 0"
        return ("clear" if expect == "error" else "refused"), f"exit {exc.code}"
    except CLEAR as exc:
        if not str(exc).strip():
            return "raw", f"{type(exc).__name__} without a message"
        return ("clear" if expect == "error" else "refused"), f"{type(exc).__name__}: {exc}"[:300]
    except Exception as exc:  # noqa: BLE001 - classifying is the point
        return "raw", f"{type(exc).__name__}: {exc}"[:300]
    return ("correct" if expect == "correct" else "silent"), "no error"


def main(names) -> None:
    out = sys.__stdout__
    scratch = tempfile.TemporaryDirectory(prefix="nimble-corpus-")  # every case's files, removed at the end
    tempfile.tempdir = scratch.name
    for name in names:
        print(f"@@corpus start {name}", file=out, flush=True)
        expect, fn, _ = CASES[name]
        kind, detail = outcome_of(expect, fn)
        print("@@corpus result " + json.dumps({"name": name, "outcome": kind, "detail": detail}), file=out, flush=True)
    os.chdir(os.path.dirname(scratch.name))
    scratch.cleanup()


if __name__ == "__main__":
    main(sys.argv[1:])
