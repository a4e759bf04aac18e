"""Replay issue 15's misuse findings against one gamelab checkout, for the before/after table.

    python benchmarks/misuse_replay.py --root /tmp/before > before.txt   # the old code (a worktree)
    python benchmarks/misuse_replay.py --root .           > after.txt    # the code in this checkout
    python benchmarks/misuse_replay.py --inputs                          # what each case feeds in

Every case prepares its inputs in a fresh temporary folder and runs ``python -m gamelab.cli`` (or a
``python -c`` for the library cases) with ``PYTHONPATH=ROOT``, as a real process. It prints one line
per case, tab-separated: case, exit status, whether a Traceback appeared, seconds, and the first
``error:`` line or a short summary of the outcome (for the data-loss cases: whether the sha256 of
every file already in the folder changed). Memory-heavy cases run under ``ulimit -v 8000000`` and a
timeout (reported as such). The full-disk and read-only cases need user and mount namespaces
(``unshare -rm``); they are reported as skipped where that fails.

A script, not a test: it asserts nothing (the same inputs are in tests/test_reliability.py and
tests/test_misuse.py), and uses the standard library only (pandas runs inside child processes).
Cases run one after another, each at most a few CPU cores; ``--only 1,12`` picks some.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PY = sys.executable
MEM = 8_000_000  # kB, ulimit -v
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "openspiel"
SMALL_SWEEP = ["sweep", "--algorithms", "mwu", "--games", "rps", "--steps", "10", "--quiet", "--out"]
SWEEP4 = ["sweep", "--algorithms", "mwu,omwu", "--games", "rps;comal3", "--steps", "10", "--chunk-size", "2",
          "--quiet", "--out"]
LLM = ["llm", "run", "inpo", "--game", "cyclic:rule=count", "--steps", "20", "--record-every", "10", "--tau", "0.5",
       "--quiet", "--out"]
# a sweep of a few seconds (for the two-writer cases) and a transformer run of a few seconds
SLOW_SWEEP = ["sweep", "--algorithms", "mwu,omwu,inpo,mmd", "--games", "random:n=30,seed=0..15", "--steps", "1000",
              "--chunk-size", "8", "--quiet", "--out"]
SLOW_LLM = ["llm", "run", "inpo", "--game", "cyclic:rule=count", "--steps", "100", "--record-every", "10", "--tau", "0.5",
            "--quiet", "--out"]

INPUTS: dict[str, str] = {}
ROOT: Path
WORK: Path


@dataclass
class Result:
    rc: int | None  # None: timed out
    out: str
    secs: float
    limit: float = 0

    @property
    def tb(self) -> bool:
        return "Traceback (most recent call last)" in self.out


def env(extra: dict | None = None) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "COLUMNS": "200", **(extra or {})}


def sh(argv: list, *, cwd=None, timeout: float = 120, mem: bool = False, umask: str | None = None,
       extra_env: dict | None = None) -> Result:
    """Run ``argv`` (stdin closed, stdout+stderr together) in its own process group; on timeout kill the group."""
    argv = [str(a) for a in argv]
    if mem or umask:
        pre = (f"ulimit -v {MEM}; " if mem else "") + (f"umask {umask}; " if umask else "")
        argv = ["bash", "-c", pre + 'exec "$@"', "bash", *argv]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd or WORK, env=env(extra_env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        rc = None
    return Result(rc, out, time.perf_counter() - start, timeout)


def gl(*args, **kw) -> Result:
    return sh([PY, "-m", "gamelab.cli", *args], **kw)


def pyc(code: str, **kw) -> Result:
    return sh([PY, "-c", code], **kw)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([PY, "-m", "gamelab.cli", *map(str, args)], cwd=WORK, env=env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                            start_new_session=True)


def finish(proc: subprocess.Popen, started: float, timeout: float = 300) -> Result:
    try:
        out, _ = proc.communicate(timeout=timeout)
        return Result(proc.returncode, out, time.perf_counter() - started, timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return Result(None, proc.communicate()[0], time.perf_counter() - started, timeout)


# ------------------------------------------------------------------ summaries
def clean(text: str, width: int = 230) -> str:
    text = re.sub(r"\s+", " ", text.replace("\t", " ")).strip()
    return text if len(text) <= width else text[:width - 1] + "…"


def error_line(out: str) -> str | None:
    for line in out.splitlines():
        s = line.strip(" │╭╰─")
        if re.match(r"(error|Error|usage error|Usage error)\b", s) or "Invalid value" in s or "No such option" in s:
            return s
    return None


def exception_line(out: str) -> str | None:
    hits = [l for l in out.splitlines() if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", l)]
    return hits[-1] if hits else None


def last_line(out: str) -> str:
    lines = [l for l in re.split(r"[\r\n]", out) if l.strip()]
    return lines[-1] if lines else "(no output)"


def outcome(r: Result, what: str | None = None) -> str:
    """The first error line, else the exception a traceback ended in, else ``what`` or the last line."""
    if r.rc is None:
        return f"TIMEOUT after {r.limit:.0f} s; output so far: {clean(last_line(r.out), 120) if r.out.strip() else 'none'}"
    return error_line(r.out) or (exception_line(r.out) if r.tb else None) or what or last_line(r.out)


def line_with(out: str, *needles: str) -> str | None:
    for line in re.split(r"[\r\n]", out):
        if any(n in line for n in needles):
            return line.strip()
    return None


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def changes(before: dict, after: dict) -> str:
    mod = [k for k in before if k in after and before[k] != after[k]]
    gone = [k for k in before if k not in after]
    new = [k for k in after if k not in before]

    def names(keys):
        return ", ".join(keys[:4]) + (f" (+{len(keys) - 4})" if len(keys) > 4 else "")
    if not (mod or gone):
        return f"existing files unchanged ({len(before)} sha256 equal)" + (f"; added {names(new)}" if new else "")
    parts = [f"modified {names(mod)}" if mod else "", f"removed {names(gone)}" if gone else "",
             f"added {names(new)}" if new else ""]
    return "DATA CHANGED: " + "; ".join(p for p in parts if p)


def manifest_of(folder: Path) -> str:
    if not folder.exists():
        return "no folder left"
    found = [p.name for p in folder.iterdir()]
    return f"folder left with {sorted(found)}" if found else "empty folder left"


def row(case: str, r: Result | None, summary: str):
    rc = "skip" if r is None else ("timeout" if r.rc is None else str(r.rc))
    tb = "-" if r is None else ("TRACEBACK" if r.tb else "no")
    secs = "-" if r is None else f"{r.secs:.1f}"
    print("\t".join([case, rc, tb, secs, clean(summary.replace(str(WORK), "$TMP"))]), flush=True)


def case(name: str, inputs: str):
    def deco(fn):
        INPUTS[name] = inputs
        CASES.append((name, fn))
        return fn
    return deco


CASES: list = []


def fresh(name: str) -> Path:
    d = WORK / name
    d.mkdir(parents=True, exist_ok=False)
    return d


def q(args) -> str:
    return shlex.join(str(a) for a in args)


# ------------------------------------------------------------------ cases
@case("1", "`llm run inpo --game cyclic:rule=count --steps 20 --record-every 10 --tau 0.5 --out D`, D a finished "
           "`sweep --algorithms mwu --games rps --steps 10`; then the sweep rerun")
def c1():
    d = fresh("c1") / "out"
    gl(*SMALL_SWEEP, d)
    before = digest(d)
    r = gl(*LLM, d)
    row("1 llm run into a sweep's folder", r, f"{outcome(r, 'accepted')}; {changes(before, digest(d))}")
    r = gl(*SMALL_SWEEP, d)
    row("1b the sweep rerun afterwards", r, outcome(r, line_with(r.out, "chunks:")))


@case("2", "`sweep --algorithms mwu --games rps --steps 10 --out D`, D a finished `llm run` (the command of case 1)")
def c2():
    d = fresh("c2") / "out"
    gl(*LLM, d)
    before = digest(d)
    r = gl(*SMALL_SWEEP, d)
    row("2 sweep into an llm run's folder", r, f"{outcome(r, 'accepted')}; {changes(before, digest(d))}")


def namespaced(script: str, timeout: float = 300) -> Result:
    return sh(["unshare", "-rm", "bash", "-c", script], timeout=timeout)


def can_unshare() -> bool:
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@case("3", "sweep (mwu,omwu × rps;comal3, 10 steps, chunk-size 2) into a 12 KiB tmpfs (private mount namespace); "
           "then the tmpfs grown to 4 MiB and the sweep rerun")
def c3():
    if not can_unshare():
        return row("3 full disk (ENOSPC)", None, "skipped: unshare -rm fails here")
    w = fresh("c3")
    mnt = w / "mnt"
    mnt.mkdir()
    cmd = q([PY, "-m", "gamelab.cli", *SWEEP4, mnt / "out"])
    r = namespaced(f"""mount -t tmpfs -o size=12k tmpfs {mnt} || exit 99
        {cmd} > {w}/full.txt 2>&1; echo $? > {w}/full.rc
        find {mnt}/out -name '*.tmp*' 2>/dev/null | wc -l > {w}/tmp.count
        mount -o remount,size=4m {mnt}
        {cmd} > {w}/again.txt 2>&1; echo $? > {w}/again.rc""")
    if r.rc == 99:
        return row("3 full disk (ENOSPC)", None, "skipped: cannot mount a tmpfs here")
    full = Result(int((w / "full.rc").read_text()), (w / "full.txt").read_text(), r.secs)
    again = Result(int((w / "again.rc").read_text()), (w / "again.txt").read_text(), 0)
    row("3 full disk (ENOSPC)", full, f"{outcome(full)}; temporary files left: {(w / 'tmp.count').read_text().strip()}")
    row("3b rerun with space", again, outcome(again, line_with(again.out, "chunks:")))


@case("4", "sweep (as in 3), and `llm run mwu --policy tabular ...`, into a folder on a tmpfs remounted read-only")
def c4():
    if not can_unshare():
        return row("4 read-only folder", None, "skipped: unshare -rm fails here")
    w = fresh("c4")
    mnt = w / "mnt"
    mnt.mkdir()
    sweep = q([PY, "-m", "gamelab.cli", *SWEEP4, mnt / "out"])
    llm = q([PY, "-m", "gamelab.cli", "llm", "run", "mwu", "--game", "cyclic:rule=count", "--steps", "2",
             "--record-every", "1", "--policy", "tabular", "--quiet", "--out", mnt / "out"])
    namespaced(f"""mount -t tmpfs -o size=4m tmpfs {mnt} && mkdir {mnt}/out && mount -o remount,ro {mnt} || exit 99
        {sweep} > {w}/sweep.txt 2>&1; echo $? > {w}/sweep.rc
        {llm} > {w}/llm.txt 2>&1; echo $? > {w}/llm.rc""")
    for name, label in (("sweep", "4 read-only folder: sweep"), ("llm", "4b read-only folder: llm run")):
        if not (w / f"{name}.rc").exists():
            return row(label, None, "skipped: cannot mount a tmpfs here")
        r = Result(int((w / f"{name}.rc").read_text()), (w / f"{name}.txt").read_text(), 0)
        row(label, r, outcome(r))


@case("5", "`sweep ... --out F` and `llm run ... --out F`, F an existing file")
def c5():
    f = fresh("c5") / "file.txt"
    f.write_text("keep me\n")
    r = gl(*SMALL_SWEEP, f)
    row("5 --out a file: sweep", r, f"{outcome(r)}; file intact: {f.read_text() == 'keep me' + chr(10)}")
    r = gl(*LLM, f)
    row("5b --out a file: llm run", r, f"{outcome(r)}; file intact: {f.read_text() == 'keep me' + chr(10)}")


SPEC = 'algorithms = ["mwu"]\ngames = ["rps"]\nsteps = 10\n'


def spec_case(label: str, folder: str, text: str, *extra, timeout: float = 120, mem: bool = False):
    w = fresh(folder)
    (w / "spec.toml").write_text(text)
    r = gl("sweep", w / "spec.toml", "--out", w / "out", "--quiet", *extra, timeout=timeout, mem=mem)
    row(label, r, f"{outcome(r, 'accepted')}; {manifest_of(w / 'out')}")
    return r


@case("6", "spec `algorithm = 5`; spec with `[algorithm]` `mwu = 5`")
def c6():
    spec_case("6 spec algorithm = 5", "c6a", SPEC + "algorithm = 5\n")
    spec_case("6b spec algorithm = {mwu = 5}", "c6b", SPEC + "[algorithm]\nmwu = 5\n")


@case("7", "spec `seeds = [9223372036854775808]` (2**63); `sweep --seeds 9223372036854775808`")
def c7():
    spec_case("7 seed 2**63 in a spec", "c7a", SPEC + "seeds = [9223372036854775808]\n")
    w = fresh("c7b")
    r = gl("sweep", "--algorithms", "mwu", "--games", "rps", "--steps", "10", "--seeds", str(2**63), "--quiet",
           "--out", w / "out")
    row("7b --seeds 2**63", r, f"{outcome(r, 'accepted')}; {manifest_of(w / 'out')}")


@case("8", "`run mwu rps --steps 100000000000000000000`; `sweep --algorithms mwu --games rps --steps 10**20` "
           "(timeout 60 s)")
def c8():
    r = gl("run", "mwu", "rps", "--steps", str(10**20), timeout=60, mem=True)
    row("8 run --steps 10**20", r, outcome(r))
    w = fresh("c8")
    r = gl("sweep", "--algorithms", "mwu", "--games", "rps", "--steps", str(10**20), "--quiet", "--out", w / "out",
           timeout=60, mem=True)
    row("8b sweep --steps 10**20", r, f"{outcome(r)}; {manifest_of(w / 'out')}")


@case("9", "`llm run mwu --game cyclic:rule=count --steps 2 --record-every 1 --d-model 0` (transformer policy)")
def c9():
    w = fresh("c9")
    r = gl("llm", "run", "mwu", "--game", "cyclic:rule=count", "--steps", "2", "--record-every", "1", "--d-model", "0",
           "--quiet", "--out", w / "out", mem=True)
    row("9 llm run --d-model 0", r, outcome(r))


@case("10", "`nash t.txt`, t.txt one line `(\"x\", \"y\", ` + 100,000 `-` + `1)` (ulimit -v 8000000)")
def c10():
    w = fresh("c10")
    (w / "t.txt").write_text('("x", "y", ' + "-" * 100_000 + "1)\n")
    r = gl("nash", w / "t.txt", mem=True)
    row("10 cross-table line of 100,000 '-'", r, outcome(r))


@case("11", "`run mwu random:n=20000 --steps 100`, `run mwu random:n=10000 --steps 100` (ulimit -v 8000000, 180 s)")
def c11():
    for n, label in ((20000, "11 run random:n=20000"), (10000, "11b run random:n=10000")):
        r = gl("run", "mwu", f"random:n={n}", "--steps", "100", timeout=180, mem=True)
        ok = line_with(r.out, "duality gap") if r.rc == 0 else None
        row(label, r, f"{outcome(r, ok)} (wall {r.secs:.0f} s)")


def pair(args_a, args_b, delay: float) -> tuple[Result, Result]:
    t0 = time.perf_counter()
    a = start(*args_a)
    time.sleep(delay)
    t1 = time.perf_counter()
    b = start(*args_b)
    return finish(a, t0), finish(b, t1)


def said(r: Result, folder: Path) -> str:
    if r.rc is None:
        return "timeout"
    return clean((error_line(r.out) or (exception_line(r.out) if r.tb else None)
                  or line_with(r.out, "chunks:", "already finished") or last_line(r.out)).replace(str(folder), "D"), 150)


def rows_of(folder: Path) -> str:
    r = pyc("import glob, sys, pandas as pd\n"
            f"fs = sorted(glob.glob({str(folder)!r} + '/chunks/*.parquet'))\n"
            "print(sum(len(pd.read_parquet(f)) for f in fs), 'rows in', len(fs), 'chunks')")
    return last_line(r.out).strip() if r.rc == 0 else f"unreadable ({clean(exception_line(r.out) or last_line(r.out), 80)})"


@case("12", "two `sweep` (4 algorithms × 16 random n=30 games, 1000 steps) into one folder started together and "
            "2 s apart; two `llm run inpo ... --steps 100` likewise")
def c12():
    for kind, args in (("sweep", SLOW_SWEEP), ("llm run", SLOW_LLM)):
        for delay, tag in ((0, "together"), (2, "2 s apart")):
            w = fresh(f"c12-{kind.replace(' ', '')}-{delay}")
            a, b = pair([*args, w / "out"], [*args, w / "out"], delay)
            worst = max((a, b), key=lambda r: (r.tb, r.rc is None, r.rc or 0))
            row(f"12 two {kind} {tag}", worst,
                f"A rc={a.rc}{' TRACEBACK' if a.tb else ''}: {said(a, w / 'out')} | B rc={b.rc}{' TRACEBACK' if b.tb else ''}: "
                f"{said(b, w / 'out')} | folder: {rows_of(w / 'out')}")


TABLE = """import glob, sys, pandas as pd
def table(d):
    df = pd.concat([pd.read_parquet(f) for f in sorted(glob.glob(d + '/chunks/*.parquet'))], ignore_index=True)
    keys = [c for c in ('run', 'iterate', 'step') if c in df]
    return df.sort_values(keys, kind='stable').reset_index(drop=True)
a, b = table(sys.argv[1]), table(sys.argv[2])
print('final table equal to an uninterrupted run' if a.equals(b) else f'TABLES DIFFER ({len(a)} vs {len(b)} rows)')
"""


@case("13", "sweep (as in 3), its first chunk truncated to half its bytes (and, separately, emptied), the sweep rerun; "
            "the table compared with an uninterrupted run's")
def c13():
    w = fresh("c13")
    gl(*SWEEP4, w / "ref")
    for how, label in (("half", "13 truncated chunk, rerun"), ("empty", "13b emptied chunk, rerun")):
        d = w / how
        gl(*SWEEP4, d)
        chunk = sorted((d / "chunks").glob("*.parquet"))[0]
        size = chunk.stat().st_size
        with open(chunk, "r+b") as f:
            f.truncate(size // 2 if how == "half" else 0)
        r = gl(*SWEEP4, d)
        cmp = sh([PY, "-c", TABLE, w / "ref", d])
        verdict = last_line(cmp.out) if cmp.rc == 0 else f"table unreadable: {clean(exception_line(cmp.out) or last_line(cmp.out), 90)}"
        row(label, r, f"{outcome(r, line_with(r.out, 'chunks:'))}; chunk now {chunk.stat().st_size} B (was {size}); {verdict}")


@case("14", "sweep (as in 3) under umask 022: the results files' modes")
def c14():
    d = fresh("c14") / "out"
    r = gl(*SWEEP4, d, umask="022")
    modes = sorted({f"{p.name if p.parent == d else p.parent.name + '/*' + p.suffix}: {oct(p.stat().st_mode & 0o777)}"
                    for p in d.rglob("*") if p.is_file()})
    row("14 file modes under umask 022", r, ", ".join(modes))


@case("15", "spec `record_policy = \"yes\"`; spec `antisymmetrize = 3`; spec `games = [\"rps\", \"comal3\", \"rps\"]`")
def c15():
    spec_case("15 record_policy = \"yes\"", "c15a", SPEC + 'record_policy = "yes"\n')
    spec_case("15b antisymmetrize = 3", "c15b", SPEC + "antisymmetrize = 3\n")
    spec_case("15c duplicate games", "c15c", SPEC.replace('["rps"]', '["rps", "comal3", "rps"]'))


@case("16", "spec of 10**7 runs (mwu × random:n=3,seed=0..999 × 10,000 seeds); `sweep --games "
            "random:n=3,seed=0..9999999` (10**7 games); stdin not a terminal, ulimit -v 8000000, 90 s")
def c16():
    seeds = ", ".join(map(str, range(10_000)))
    spec_case("16 sweep of 10**7 runs", "c16a", f'algorithms = ["mwu"]\ngames = ["random:n=3,seed=0..999"]\n'
              f"steps = 10\nseeds = [{seeds}]\n", timeout=90, mem=True)
    w = fresh("c16b")
    r = gl("sweep", "--algorithms", "mwu", "--games", "random:n=3,seed=0..9999999", "--steps", "10", "--quiet",
           "--out", w / "out", timeout=90, mem=True)
    row("16b range of 10**7 games", r, f"{outcome(r, 'accepted')}; {manifest_of(w / 'out')}")


@case("17", "`run mwu g.csv --steps 5`, g.csv a 3×3 matrix saved with a UTF-8 BOM; `sweep s.toml`, s.toml with a BOM")
def c17():
    w = fresh("c17")
    (w / "g.csv").write_text("0.5,0.2,0.7\n0.8,0.5,0.1\n0.3,0.9,0.5\n", encoding="utf-8-sig")
    r = gl("run", "mwu", w / "g.csv", "--steps", "5")
    row("17 CSV with BOM", r, outcome(r, line_with(r.out, "duality gap")))
    (w / "s.toml").write_text(SPEC, encoding="utf-8-sig")
    r = gl("sweep", w / "s.toml", "--out", w / "out", "--quiet")
    row("17b TOML spec with BOM", r, outcome(r, line_with(r.out, "chunks:")))


@case("18", "`run mwu a --steps 5`, a → b → a symbolic links")
def c18():
    w = fresh("c18")
    (w / "a").symlink_to(w / "b")
    (w / "b").symlink_to(w / "a")
    r = gl("run", "mwu", w / "a", "--steps", "5")
    row("18 symlink loop as game file", r, outcome(r))


@case("19", "`sweep --algorithms mwu --games rps --steps 5 --grid eta=nan`")
def c19():
    w = fresh("c19")
    r = gl("sweep", "--algorithms", "mwu", "--games", "rps", "--steps", "5", "--grid", "eta=nan", "--quiet",
           "--out", w / "out")
    row("19 --grid eta=nan", r, f"{outcome(r, 'accepted')}; {manifest_of(w / 'out')}")


@case("20", "`run mwuu rps --steps 5`; `run mwu rsp --steps 5`")
def c20():
    for args, label in ((["mwuu", "rps"], "20 misspelt algorithm"), (["mwu", "rsp"], "20b misspelt game")):
        r = gl("run", *args, "--steps", "5")
        row(label, r, f"did-you-mean: {'yes' if 'did you mean' in r.out.lower() else 'no'}; {outcome(r)}")


@case("21", "`python -c \"import pandas; pandas.read_parquet(D)\"`, D a sweep's results folder")
def c21():
    d = fresh("c21") / "out"
    gl(*SWEEP4, d)
    r = pyc(f"import pandas; print(len(pandas.read_parquet({str(d)!r})), 'rows')")
    row("21 pandas.read_parquet(folder)", r, outcome(r))


API = "from gamelab.games import parse_game\nfrom gamelab.run import run, run_batch\nrps = parse_game('rps')\n"


@case("22", "`run('mwu', rps, steps=2, eta='0.1')`; `run(..., eta=[0.1, 0.2])`; "
            "`run_batch('mwu', [rps, rps], steps=2, hparams={'eta': [0.1, 0.2, 0.3]})` (gamelab.run)")
def c22():
    for call, label in (("run('mwu', rps, steps=2, eta='0.1')", "22 API eta='0.1'"),
                        ("run('mwu', rps, steps=2, eta=[0.1, 0.2])", "22b API eta=[0.1, 0.2] for one run"),
                        ("run_batch('mwu', [rps, rps], steps=2, hparams={'eta': [0.1, 0.2, 0.3]})",
                         "22c API run_batch, 3 etas for 2 games")):
        r = pyc(API + f"r = {call}\nprint('accepted: ran', sorted(r.trace)[:2])")
        row(label, r, outcome(r))


def on_terminal(argv: list, timeout: float = 120) -> Result:
    """Run with stdout and stderr on a pseudo-terminal (so a progress bar may show); return all it wrote."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))  # 0×0 would hide any bar
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(a) for a in argv], cwd=WORK, env=env(), stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, start_new_session=True)
    os.close(slave)
    chunks, rc = [], None
    while True:
        if time.perf_counter() - t0 > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    rc = proc.wait()
    os.close(master)
    out = b"".join(chunks).decode(errors="replace")
    return Result(rc if time.perf_counter() - t0 <= timeout else None, out, time.perf_counter() - t0, timeout)


@case("23", "`run comal rps --feedback sampled --steps 100` on a terminal (pseudo-tty)")
def c23():
    r = on_terminal([PY, "-m", "gamelab.cli", "run", "comal", "rps", "--feedback", "sampled", "--steps", "100"])
    bar = [s.strip() for s in re.split(r"[\r\n]", r.out) if re.search(r"\b\d+/100\b", s)]
    row("23 sampled COMAL: progress shown?", r,
        outcome(r, f"progress bar: {'yes, ' + repr(clean(re.sub('█+', '█…', bar[-1]), 70)) if bar else 'no'}; "
                   f"{clean(line_with(r.out, 'duality gap') or '', 60)}"))


@case("24", "`nash ../shared/data/openspiel/rrps_bot_table.txt --antisymmetrize` (43 bots)")
def c24():
    table = DATA / "rrps_bot_table.txt"
    if not table.is_file():
        return row("24 nash --antisymmetrize (43 bots)", None, f"skipped: no {table}")
    r = gl("nash", table, "--antisymmetrize")
    corr = line_with(r.out, "V + V", "antisymmetrized")
    names = "randbot" in r.out
    row("24 nash --antisymmetrize (43 bots)", r,
        outcome(r, f"correction: {repr(clean(corr, 90)) if corr else 'not printed'}; bot names: "
                   f"{'yes, ' + repr(clean(line_with(r.out, 'randbot'), 70)) if names else 'no'}"))


@case("25", "example spec under experiments/ or examples/; `record_policy` in README.md and in `sweep --help`")
def c25():
    specs = sorted(str(p.relative_to(ROOT)) for d in ("experiments", "examples") for p in (ROOT / d).glob("*.toml"))
    readme = (ROOT / "README.md").read_text()
    r = gl("sweep", "--help")
    flat = re.sub(r"[\s│]+", "", r.out)
    row("25 example spec; record_policy documented", r,
        f"example specs: {specs or 'none'}; README mentions record_policy: {'record_policy' in readme}; "
        f"sweep --help: {'yes' if ('record_policy' in flat or '--record-policy' in flat) else 'no'}")


def main():
    global ROOT, WORK
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, help="the gamelab checkout to run (its folder holding gamelab/)")
    ap.add_argument("--only", help="comma-separated case numbers, e.g. 1,12")
    ap.add_argument("--inputs", action="store_true", help="print each case's inputs and stop")
    args = ap.parse_args()
    if args.inputs:
        for name, text in INPUTS.items():
            print(f"{name}\t{text}")
        return
    if args.root is None:
        ap.error("--root is required")
    ROOT = args.root.resolve()
    where = subprocess.run([PY, "-c", "import gamelab; print(gamelab.__file__)"], env=env(), capture_output=True,
                           text=True, cwd=tempfile.gettempdir())
    if not where.stdout.startswith(str(ROOT)):
        sys.exit(f"error: PYTHONPATH={ROOT} imports {where.stdout.strip() or where.stderr.strip()}, not that checkout")
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "gamelab"], capture_output=True, text=True).stdout
    print(f"# root {ROOT} (gamelab from {where.stdout.strip()}), commit {rev.strip()}"
          f"{' + uncommitted changes under gamelab/' if dirty.strip() else ''}")
    print("# case\texit\ttraceback\tseconds\toutcome")
    only = set(args.only.split(",")) if args.only else None
    with tempfile.TemporaryDirectory(prefix="misuse_replay.") as tmp:
        WORK = Path(tmp)
        for name, fn in CASES:
            if only is None or name in only:
                try:
                    fn()
                except Exception as exc:  # the replay itself failed: say so and go on
                    row(f"{name} (replay failed)", None, f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
