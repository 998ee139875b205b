"""Signals, exit statuses and one-line errors (issue 12, items 4, 11 and 12).

- SIGTERM stops a study as Ctrl-C does; SIGINT (to the runner alone or to its whole process group,
  as a terminal's Ctrl-C) keeps every finished unit, prints one line and exits 130 (143 for
  SIGTERM); no process of the study's tree survives, no crash file is left, and a rerun resumes.
- A SIGKILLed runner takes its training workers, the flow workers, the forkserver and the resource
  tracker with it (``bench.runtime.lifeline``).
- Exit 1 when a unit failed; errors knowable at plan time are refused then; errors after planning
  print one ``error: ...`` line with exit 2 (a traceback only with ``DUALFLOW_LOGLEVEL=DEBUG``).

The process tests run real studies in a subprocess (``python -m bench.run``) and follow their
process tree through ``/proc`` (Linux only).
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.run import main
from tests.helpers.signals import ctrl_c_reaches_it

TINY = [
    "study=smoke",
    "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
    "study.representations=[single_phase]",
    "trainer.epochs=1", "flow.size=32", "tracking=none", "report=false", "progress=false", "executor.workers=1",
]
GONE_WITHIN_S = 10.0  # every process of a stopped study's tree must be gone this long after the signal
linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="follows process trees through /proc")


def _paths(tmp_path: Path, cache: Path) -> list[str]:
    return [f"paths.runs={tmp_path / 'runs'}", f"paths.cache={cache}", f"paths.reports={tmp_path / 'rep'}"]


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------ plan-time refusals (item 11)

@pytest.mark.parametrize("override, says, modes", [
    ("trainer.device=tpu", r"device='tpu' is not a device: use auto, cpu, cuda, cuda:N", ("run", "--plan", "--cfg")),
    ("executor.workers=0", r"executor.workers must be a whole number >= 1.*got 0", ("run", "--plan", "--cfg")),
    ("executor.on_error=ignore", r"executor.on_error must be one of continue, stop, got 'ignore'", ("run",)),
    ("executor.threads_per_worker=0", r"executor.threads_per_worker must be null .* got 0", ("run",)),
    ("resume=maybe", r"resume must be true or false, got 'maybe'", ("run",)),
])
def test_bad_config_is_refused_at_plan_time(tmp_path, capsys, override, says, modes):
    for mode in modes:
        extra = {"run": [], "--plan": ["--plan"], "--cfg": ["--cfg", "job"]}[mode]
        cache = tmp_path / "cache"
        assert main([*TINY, *_paths(tmp_path, cache), override, *extra]) == 2, mode
        line = _one_error_line(capsys.readouterr().err)
        assert re.search(says, line), (mode, line)
        assert not cache.exists() and not (tmp_path / "runs").exists()  # before any data (or folder) work


@pytest.mark.parametrize("cfg, says", [
    ({"workers": -3}, r"executor.workers must be a whole number >= 1.*got -3"),
    ({"workers": 1.5}, r"executor.workers .* got 1.5"),
    ({"workers": True}, r"executor.workers .* got True"),
    ({"workers": "4"}, r"executor.workers .* got '4'"),
    ({"threads_per_worker": "two"}, r"executor.threads_per_worker must be null .* got 'two'"),
    ({"threads_per_worker": -1}, r"executor.threads_per_worker .* got -1"),
    ({"on_error": None}, r"executor.on_error must be one of continue, stop, got None"),
    ({"unit_timeout_s": -1}, r"executor.unit_timeout_s must be >= 0"),
    ({"unit_timeout_s": "soon"}, r"executor.unit_timeout_s must be >= 0"),
    ({"name": "slurm"}, r"unknown executor 'slurm'. Available: local, ray"),
])
def test_executor_config_checks(cfg, says):
    from bench.core.config import ConfigError
    from bench.runtime.executors import check_executor_cfg, make_executor

    with pytest.raises(ConfigError, match=says):
        check_executor_cfg(cfg)
    with pytest.raises(ConfigError, match=says):
        make_executor(cfg)  # library callers get the same refusal
    check_executor_cfg({"workers": 2, "threads_per_worker": None, "on_error": "stop", "unit_timeout_s": 1.5})


def test_devices_that_exist_are_accepted():
    from bench.core.schemas import TrainConfig

    for device in ("auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"):
        assert TrainConfig.from_mapping({"device": device}).device == device


def test_class_weights_of_the_wrong_length_are_refused_before_any_training(tmp_path, session_cache, capsys):
    assert main([*TINY, *_paths(tmp_path, session_cache), "trainer.class_weights=[1.0,2.0]"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "cell synthetic|tvl1|single_phase|ststnet|0" in line
    assert "trainer.class_weights has 2 entries" in line and "3 classes" in line
    assert not list((tmp_path / "runs" / "smoke").glob("units/*"))  # no unit ran


def test_workers_above_units_or_cores_are_capped_with_a_note():
    from bench.runtime.executors import LocalExecutor

    cores = os.cpu_count() or 1
    ex = LocalExecutor({"workers": 1000})
    n = min(cores, 3)
    assert ex.processes(3) == n
    assert ex.cap_note(3) == f"note: executor.workers=1000 capped to {n} (3 unit(s) to run, {cores} core(s))"
    assert ex.threads == 1  # threads follow the core cap, not the number of units left
    assert LocalExecutor({"workers": 1}).cap_note(5) is None
    two = LocalExecutor({"workers": 2})
    if cores >= 2:
        assert two.cap_note(5) is None and two.processes(1) == 1 and two.threads == max(1, cores // 2)


# ------------------------------------------------------------------------ exit statuses (items 11, 12)

@pytest.fixture
def failing_units(monkeypatch):
    """Every unit raises inside training (workers=1 runs them in this process)."""
    import bench.training.units

    def boom(task, *a, **kw):
        raise RuntimeError(f"injected failure in fold {task.fold}")

    monkeypatch.setattr(bench.training.units, "train_and_predict", boom)


def test_exit_status_is_1_when_any_unit_failed(tmp_path, session_cache, capsys, failing_units):
    assert main([*TINY, *_paths(tmp_path, session_cache)]) == 1
    out = capsys.readouterr().out
    assert "3 unit(s) FAILED" in out


def test_on_error_stop_is_one_error_line_with_exit_2(tmp_path, session_cache, capsys, failing_units):
    assert main([*TINY, *_paths(tmp_path, session_cache), "executor.on_error=stop"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert re.fullmatch(r"error: unit \w+ \(synthetic\|tvl1\|single_phase\|ststnet\|0, fold \S+\) failed: "
                        r"RuntimeError: injected failure in fold \S+ \(executor.on_error=stop\)", line), line


def _raiser(exc):
    def f(*a, **kw):
        raise exc
    return f


@pytest.mark.parametrize("where", ["data", "flow", "protocol", "disk_full", "report"])
def test_errors_after_planning_are_one_line_with_exit_2(tmp_path, session_cache, capsys, monkeypatch, where):
    from bench.data.table import DataError
    from bench.flow.pipeline import FlowError
    from bench.protocols.folds import ProtocolError
    from bench.report.load import ReportInputError

    args = [*TINY, *_paths(tmp_path, session_cache)]
    if where == "data":  # a real one: an annotation sheet without a label column
        root = tmp_path / "data"
        root.mkdir()
        (root / "annotations.csv").write_text("subject,clip,onset,apex,offset\n1,a,0,1,2\n")
        args += ["dataset=generic", f"dataset.root={root}"]
        says = r"annotations.csv: missing column\(s\) \['label'\]"
    elif where == "flow":
        import bench.flow

        monkeypatch.setattr(bench.flow, "compute_flows", _raiser(FlowError("flow extraction failed for sample s1/c1")))
        says = "flow extraction failed for sample s1/c1"
    elif where == "protocol":
        import bench.protocols.folds

        monkeypatch.setattr(bench.protocols.folds.ProtocolSpec, "make_folds", _raiser(ProtocolError("the sample table is empty")))
        says = "the sample table is empty"
    elif where == "disk_full":
        import bench.runner.walk

        full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "runs" / "smoke" / "results.parquet"))
        monkeypatch.setattr(bench.runner.walk, "write_tables", _raiser(full))  # where the walk calls it
        says = r"OSError .*results.parquet: No space left on device \(errno 28\)"
    else:
        import bench.report

        monkeypatch.setattr(bench.report, "make_report", _raiser(ReportInputError("results.parquet: no 'status' column")))
        args += ["report=true"]
        says = "results.parquet: no 'status' column"
    assert main(args) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert re.search(says, line), line
    assert DataError and FlowError  # imported: main only knows the kinds of modules already loaded


def test_debug_loglevel_prints_the_traceback_too(tmp_path, session_cache, capsys, monkeypatch):
    import bench.flow
    from bench.flow.pipeline import FlowError

    monkeypatch.setattr(bench.flow, "compute_flows", _raiser(FlowError("flow extraction failed for sample s1/c1")))
    monkeypatch.setenv("DUALFLOW_LOGLEVEL", "DEBUG")
    assert main([*TINY, *_paths(tmp_path, session_cache)]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.rstrip().splitlines()[-1].startswith("error: flow")


def test_reports_folder_is_checked_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    cache = tmp_path / "cache"
    args = [*TINY, f"paths.runs={tmp_path / 'runs'}", f"paths.cache={cache}", f"paths.reports={blocker}", "report=true"]
    assert main(args) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"cannot write to the reports folder {blocker / 'smoke'}" in line and "paths.reports=" in line
    assert not cache.exists()


def test_interrupt_in_process_keeps_finished_units_and_says_so(tmp_path, session_cache, capsys, monkeypatch):
    """Ctrl-C while the second unit trains (workers=1: in this process)."""
    import bench.training.units

    real = bench.training.units.train_and_predict
    calls = []

    def second_interrupted(task, *a, **kw):
        calls.append(task.fold)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(task, *a, **kw)

    monkeypatch.setattr(bench.training.units, "train_and_predict", second_interrupted)
    assert main([*TINY, *_paths(tmp_path, session_cache)]) == 130
    captured = capsys.readouterr()
    run_dir = tmp_path / "runs" / "smoke"
    assert captured.err.strip() == (f"interrupted (SIGINT): 1 of 3 units finished and kept in {run_dir}; "
                                    f"rerun the same command to resume")
    assert len(list((run_dir / "units").glob("*.json"))) == 1
    assert not (run_dir / "results.parquet").exists()


def test_stopping_a_pool_keeps_the_records_already_back_and_no_empty_crash_file(tmp_path):
    """What ``_stop_pool`` does with the units in flight (no processes needed: a pool without any)."""
    from concurrent.futures import Future
    from types import SimpleNamespace

    from bench.runtime.executors import _stop_pool

    class NoPool:
        _processes: dict = {}

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    back, running, dying = Future(), Future(), Future()
    for f in (back, running, dying):
        f.set_running_or_notify_cancel()
    back.set_result({"row": {"status": "ok"}})
    t_back, t_running, t_dying = (SimpleNamespace(unit_key=k, run_dir=str(tmp_path))
                                  for k in ("back", "running", "dying"))
    (tmp_path / "units").mkdir()
    empty, real = tmp_path / "units" / "running.crash", tmp_path / "units" / "dying.crash"
    empty.touch()
    real.write_text("Fatal Python error: Segmentation fault")  # a real crash log is evidence: kept
    kept = []
    inflight = {back: t_back, running: t_running, dying: t_dying}
    assert _stop_pool(NoPool(), inflight, lambda t, rec: kept.append((t.unit_key, rec))) == []
    assert kept == [("back", {"row": {"status": "ok"}})]
    assert list(inflight.values()) == [t_running, t_dying]  # abandoned: a rerun redoes them
    assert not empty.exists() and real.exists()


def _idle_worker(parent_pid: int, q) -> None:
    """A pool worker waiting for its next task (main thread blocked in a read) when the kernel hands
    the runner's SIGTERM to another of its threads."""
    import threading

    from bench.runtime.lifeline import die_with

    die_with(parent_pid)

    def other_thread():
        time.sleep(0.5)  # the main thread is blocked in os.read by now
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        time.sleep(60)

    threading.Thread(target=other_thread, daemon=True).start()
    q.put(os.getpid())
    r, _w = os.pipe()
    os.read(r, 1)


def test_a_worker_ends_on_sigterm_whichever_thread_gets_it():
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_idle_worker, args=(os.getpid(), q))
    p.start()
    try:
        q.get(timeout=60)
        p.join(10)
        assert p.exitcode == 143, "a worker idle in a read survived a SIGTERM delivered to another of its threads"
    finally:
        if p.exitcode is None:
            p.kill()
            p.join()


# ------------------------------------------------------------------------ real signals (item 4)

def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2:].split()
    return int(rest[1]), rest[0], int(rest[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Tree:
    """Every process ever seen below a root (pid -> start time and command line, kept after it ends)."""

    def __init__(self, root: int):
        self.root, self.start, self.cmd = root, {}, {}

    def update(self) -> None:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (st := _stat(int(entry))) is not None:
                children.setdefault(st[0], []).append(int(entry))
        todo = [self.root]
        while todo:
            for c in children.get(todo.pop(), []):
                if c not in self.start and (st := _stat(c)) is not None:
                    self.start[c], self.cmd[c] = st[2], _cmdline(c)
                todo.append(c)

    def having(self, word: str) -> list[int]:
        return [p for p, c in self.cmd.items() if word in c]

    def survivors(self) -> list[str]:
        """Those still running (the same process: same start time; a zombie counts as gone)."""
        out = []
        for pid, start in self.start.items():
            st = _stat(pid)
            if st is not None and st[2] == start and st[1] != "Z":
                out.append(f"{pid} (ppid {st[0]}): {self.cmd[pid][:160]}")
        return out

    def wait_all_gone(self, since: float) -> list[str]:
        while time.monotonic() < since + GONE_WITHIN_S and self.survivors():
            time.sleep(0.2)
        return self.survivors()

    def kill_all(self) -> None:
        for pid, start in self.start.items():
            st = _stat(pid)
            if st is not None and st[2] == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def _study_cmd(tmp_path: Path, cache: Path, *extra: str) -> list[str]:
    # 8 units (2 representations x 4 LOSO folds), each a few seconds at 100 epochs
    return [sys.executable, "-m", "bench.run", "study=smoke", "trainer.epochs=100", "executor.workers=2",
            "executor.threads_per_worker=1", "tracking=none", "report=false", "progress=false",
            *_paths(tmp_path, cache), *extra]


def _units(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "units").glob("*.json"))


def _start_and_watch(cmd, tmp_path, until, timeout_s=300):
    """Start the study and follow its process tree until ``until(tree)`` holds: (proc, tree, log)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DUALFLOW_LOGLEVEL", None)
    log = open(tmp_path / "study.log", "w+")  # noqa: SIM115 - read back by the caller
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=ctrl_c_reaches_it)
    tree = Tree(proc.pid)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            tree.update()
            if until(tree):
                break
            time.sleep(0.05)
    except BaseException:
        proc.kill()
        tree.kill_all()
        raise
    return proc, tree, log


def _log_text(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()


def _signal_and_wait(proc, tree, log, send) -> list[str]:
    """Send the signal (``send(pid)``) mid-run; returns the processes left GONE_WITHIN_S later."""
    try:
        assert proc.poll() is None, f"the study ended before the signal:\n{_log_text(log)[-3000:]}"
        tree.update()
        send(proc.pid)
        t_sig = time.monotonic()
        proc.wait(timeout=60)
        return tree.wait_all_gone(t_sig)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        tree.kill_all()


STOPS = [
    pytest.param(signal.SIGTERM, False, 143, id="sigterm", marks=pytest.mark.ci),
    pytest.param(signal.SIGINT, False, 130, id="sigint-runner-alone"),
    pytest.param(signal.SIGINT, True, 130, id="sigint-process-group"),  # what a terminal's Ctrl-C sends
]


@linux_only
@pytest.mark.slow
@pytest.mark.parametrize("sig, group, status", STOPS)
def test_a_signal_stops_the_study_keeps_finished_units_and_leaves_no_process(tmp_path, session_cache, sig, group,
                                                                             status):
    run_dir = tmp_path / "runs" / "smoke"
    cmd = _study_cmd(tmp_path, session_cache)
    done_before = []

    def mid_training(tree):  # a unit is on disk and both workers are busy with others
        done_before[:] = _units(run_dir)
        return len(done_before) >= 1 and len(tree.having("spawn_main")) >= 2

    proc, tree, log = _start_and_watch(cmd, tmp_path, mid_training)
    left = _signal_and_wait(proc, tree, log, lambda pid: (os.killpg if group else os.kill)(pid, sig))
    text = _log_text(log)
    assert proc.returncode == status, text[-3000:]
    assert not left, "still running %.0f s after the signal:\n%s" % (GONE_WITHIN_S, "\n".join(left))
    assert len(tree.having("spawn_main")) >= 2 and tree.having("resource_tracker"), tree.cmd
    assert "Traceback" not in text, text[-3000:]
    kept = _units(run_dir)
    name = signal.Signals(sig).name
    assert text.strip().splitlines()[1:] == [f"interrupted ({name}): {len(kept)} of 8 units finished and kept in "
                                             f"{run_dir}; rerun the same command to resume"], text[-3000:]
    assert set(done_before) <= set(kept) and len(kept) < 8
    assert list((run_dir / "units").glob("*.crash")) == []  # the stopped workers did not crash
    assert not (run_dir / "results.parquet").exists()

    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resume: {len(kept)} finished unit(s) found in {run_dir / 'units'}, {8 - len(kept)} to run" in again.stdout
    assert json.loads((run_dir / "run.json").read_text())["units"] == {"total": 8, "ran": 8 - len(kept),
                                                                       "resumed": len(kept), "failed": 0}


@linux_only
@pytest.mark.ci
@pytest.mark.slow
def test_sigkill_of_the_runner_takes_its_training_workers_along(tmp_path, session_cache):
    run_dir = tmp_path / "runs" / "smoke"

    def mid_training(tree):
        return len(_units(run_dir)) >= 1 and len(tree.having("spawn_main")) >= 2

    proc, tree, log = _start_and_watch(_study_cmd(tmp_path, session_cache), tmp_path, mid_training)
    # the runner alone, as the out-of-memory killer would
    left = _signal_and_wait(proc, tree, log, lambda pid: os.kill(pid, signal.SIGKILL))
    assert proc.returncode == -signal.SIGKILL
    assert len(tree.having("spawn_main")) >= 2 and tree.having("resource_tracker"), tree.cmd
    assert not left, "orphans %.0f s after the runner's SIGKILL:\n%s" % (GONE_WITHIN_S, "\n".join(left))
    assert list((run_dir / "units").glob("*.crash")) == []  # ended with their runner, not crashed


@linux_only
@pytest.mark.slow
@pytest.mark.parametrize("sig, group", [(signal.SIGKILL, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["sigkill", "sigterm", "sigint-process-group"])
def test_a_signal_during_flow_extraction_leaves_no_process(tmp_path, sig, group):
    """Flow workers are forkserver children: their parent, the forkserver, waits for them to go, so
    after a SIGKILL of the runner they must notice it themselves."""
    cache = tmp_path / "cache"  # fresh: the flows must be computed
    big = "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 12, clips_per_class: 4}}]"

    def flow_workers_running(tree):  # the server and two workers forked from it
        return len(tree.having("forkserver")) >= 3

    proc, tree, log = _start_and_watch(_study_cmd(tmp_path, cache, big, "flow.workers=2"), tmp_path,
                                       flow_workers_running)
    left = _signal_and_wait(proc, tree, log, lambda pid: (os.killpg if group else os.kill)(pid, sig))
    assert len(tree.having("forkserver")) >= 3 and tree.having("resource_tracker"), tree.cmd
    assert not left, "still running %.0f s after the runner's %s:\n%s" % (GONE_WITHIN_S, sig.name, "\n".join(left))
    if sig != signal.SIGKILL:  # no unit has run yet: the short form of the one line
        text = _log_text(log)
        assert proc.returncode == 128 + sig and "Traceback" not in text, text[-3000:]
        assert text.strip().splitlines()[1:] == [f"interrupted ({sig.name}); every finished unit is kept in the run "
                                                 "directory; rerun the same command to resume"], text[-3000:]
