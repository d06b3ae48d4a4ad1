"""Coverage-guided fuzzing (atheris / libFuzzer) of the untrusted-input parsers in ``parser_targets``.

    python -m tests.abuse.fuzz_parsers ics   -max_total_time=60 -artifact_prefix=/tmp/crash-   [corpus_dir]
    python -m tests.abuse.fuzz_parsers mime  ...   (also: strip, intent)

Each input must finish within ``-timeout`` seconds and may only fail in the target's documented way; anything else
is a crash, saved by libFuzzer under ``-artifact_prefix``. The seeds in ``tests/abuse/seeds`` start it from
realistic inputs. CI runs each target for a few seconds (tests/abuse/test_fuzz_atheris.py); run it longer by hand.
"""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["connectors", "replies", "tests.abuse"]):
    from tests.abuse.parser_targets import TARGETS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        print(f"usage: python -m tests.abuse.fuzz_parsers {{{','.join(TARGETS)}}} [libFuzzer options] [corpus]",
              file=sys.stderr)
        sys.exit(2)
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
