"""A bounded atheris run per parser (ICS, MIME, reply stripping, intent): 5 seconds each, 20 seconds in all, seeded
from tests/abuse/seeds. A crash, an undocumented exception or an input slower than 20 seconds fails the test and
leaves the input under the test's temporary folder for reproduction."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.abuse.parser_targets import TARGETS

pytest.importorskip("atheris", reason="pip install atheris (in the test extras)")

SEEDS = Path(__file__).parent / "seeds"
REPO = Path(__file__).resolve().parents[2]
SEED_FOR = {"ics": ["event.ics"], "mime": ["reply.eml"], "strip": ["reply.txt"], "intent": ["reply.txt"]}
SECONDS = 5


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_briefly(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in SEED_FOR[target]:
        shutil.copy(SEEDS / name, corpus / name)
    cmd = [sys.executable, "-m", "tests.abuse.fuzz_parsers", target, f"-max_total_time={SECONDS}", "-timeout=20",
           "-rss_limit_mb=1024", "-max_len=8192", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1",
           str(corpus)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=SECONDS + 60)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    assert proc.returncode == 0 and not crashes, (
        f"fuzzing {target} found {crashes or 'a failure'} (inputs in {tmp_path}):\n{proc.stderr[-3000:]}")
    runs = [ln for ln in proc.stderr.splitlines() if "stat::number_of_executed_units" in ln]
    assert runs and int(runs[0].rsplit(":", 1)[1]) > 50, f"the fuzzer barely ran:\n{proc.stderr[-1500:]}"
