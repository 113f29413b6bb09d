"""A real single-node SLURM on loopback, started and stopped by the cluster tests.

`LocalSlurm` brings up the smallest SLURM that runs the workflow through Snakemake's SLURM
executor plugin exactly as on a real cluster, on a Debian machine where the tests run as root
(CI containers, fresh cloud machines). No systemd and no cgroups are needed.

What `start()` does, in order (each phase is timed in `timings`):

1. check: Linux, root, and either the SLURM/munge binaries already installed or `apt-get`
   available; otherwise `SlurmUnavailable` is raised with the reason (the fixture skips on it,
   or fails in CI).
2. install: if a binary is missing, `apt-get update` and `apt-get install -y
   --no-install-recommends munge slurmctld slurmd slurm-client`, with a temporary
   `/usr/sbin/policy-rc.d` that exits 101 so that the package scripts start no service.
3. munge: a key (`mungekey --create`, munge-owned, mode 0400) if none exists, munge-owned run,
   lib and log dirs, `munged --force` started as the munge user unless a working munged is
   already running (then it is reused and left running at stop). Checked with
   `munge -n | unmunge`.
4. config: `slurm.conf` and `gres.conf` are written into the harness directory (default
   `/tmp/microdiff-slurm`, or `$MICRODIFF_SLURM_DIR`): one node `localhost` with CPUs from
   `os.cpu_count()`, RealMemory = 90 % of MemTotal, and one declared GPU `gpu:fake:1` whose
   device file is `/dev/null` (slurmd drops a GPU without a file, and refuses a regular file).
   `/etc/slurm/slurm.conf` and `/etc/slurm/gres.conf` are symlinked to them: the plugin's job
   step strips every `SLURM_*` variable, `SLURM_CONF` included, so `srun` inside a job only
   finds the configuration at the default path.
5. daemons: anything a previous (unclean) run left behind is stopped by the PIDs in its pid
   files, the controller state dir is cleared (a node drained by an unclean stop would stay
   drained), then `slurmctld -i` and `slurmd -N localhost` are started and `sinfo` is polled
   until the node is idle (`timings["daemons"]` includes `stop_leftovers`). A daemon that dies
   (a fatal configuration error) or a node not idle within `startup_timeout` raises
   `SlurmStartError` with the tail of both daemon logs.

There is no accounting daemon: `sacct` does not work, so the SLURM profile sets
`slurm-status-command: squeue`, and `MinJobAge=600` keeps finished jobs visible to `squeue -t all`
and `scontrol show job` long enough for both the plugin's status checks and the tests'
assertions on what was requested.

`stop()` kills only by the PIDs in the pid files (checking `/proc/<pid>/comm` first so that a
recycled PID is never hit), munged only if this harness started it, and removes the
`/etc/slurm` symlinks that point into the harness directory. `start()` and `stop()` are both
idempotent.

Run directly for a manual bring-up: `python tests/cluster/slurm.py start|stop|status`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
BINARIES = ("munged", "mungekey", "munge", "unmunge", "slurmctld", "slurmd", "sinfo", "sbatch")
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ETC_SLURM = Path("/etc/slurm")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_PIDFILE = Path("/run/munge/munged.pid")
MUNGE_DIRS = (Path("/run/munge"), Path("/var/lib/munge"), Path("/var/log/munge"))
# Character devices standing in for GPU device files (slurmd needs one distinct file per GPU).
GPU_DEVICES = ("/dev/null", "/dev/zero", "/dev/full")
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
POLICY_RC_D_TEXT = "#!/bin/sh\n# microdiff SLURM test harness: start no service\nexit 101\n"


class SlurmUnavailable(Exception):
    """This machine cannot host the local SLURM (the reason is the message); tests skip."""


class SlurmStartError(RuntimeError):
    """SLURM could be installed but did not come up; the message carries the daemon logs."""


def _which(name: str) -> str | None:
    return shutil.which(name, path=SBIN_PATH + ":" + os.environ.get("PATH", ""))


def _run(cmd: list[str], *, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, raising SlurmStartError with its output when it fails."""
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmStartError(f"{' '.join(cmd)} timed out after {timeout} s") from exc
    if proc.returncode != 0:
        raise SlurmStartError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return proc


def _alive(pid: int, comm: str) -> bool:
    """Whether `pid` is a live process whose command name is `comm` (guards recycled PIDs)."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    # /proc/<pid>/comm is truncated to 15 characters.
    return name == comm[:15]


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _kill_pidfile(pidfile: Path, comm: str, timeout: float = 15.0) -> bool:
    """SIGTERM the process named in `pidfile` (SIGKILL after `timeout`). True if one was found."""
    pid = _read_pid(pidfile)
    if pid is None or not _alive(pid, comm):
        with contextlib.suppress(OSError):
            pidfile.unlink()
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid, comm) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid, comm):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid, comm) and time.monotonic() < deadline + 5:
            time.sleep(0.1)
    with contextlib.suppress(OSError):
        pidfile.unlink()
    return True


def _mem_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise SlurmStartError("MemTotal not found in /proc/meminfo")


class LocalSlurm:
    """One-node SLURM (controller + node `localhost` + one fake GPU) owned by the tests.

    Attributes after `start()`: `timings` (seconds per phase and `total`), `conf` (the
    slurm.conf path), `partition` (the only partition, the default one).
    """

    node = "localhost"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        partition: str = "debug",
        gpu_partition: str = "gpu",
        gpus: int = 2,
        startup_timeout: float = 60.0,
        min_job_age: int = 600,
        lock_timeout: float = 900.0,
    ) -> None:
        self.root = Path(root or os.environ.get("MICRODIFF_SLURM_DIR", "/tmp/microdiff-slurm"))
        self.partition = partition
        self.gpu_partition = gpu_partition
        if not 1 <= gpus <= len(GPU_DEVICES):
            raise ValueError(f"gpus must be 1..{len(GPU_DEVICES)}")
        self.gpus = gpus
        self.startup_timeout = startup_timeout
        self.min_job_age = min_job_age
        self.lock_timeout = lock_timeout
        self.lock_path = self.root.with_name(self.root.name + ".lock")
        self._lock_fd: int | None = None
        self.conf = self.root / "etc" / "slurm.conf"
        self.gres_conf = self.root / "etc" / "gres.conf"
        self.ctld_pidfile = self.root / "run" / "slurmctld.pid"
        self.slurmd_pidfile = self.root / "run" / "slurmd.pid"
        self.ctld_log = self.root / "log" / "slurmctld.log"
        self.slurmd_log = self.root / "log" / "slurmd.log"
        self.state_dir = self.root / "spool" / "ctld"
        self.slurmd_spool = self.root / "spool" / "d"
        self.timings: dict[str, float] = {}
        self.started_munged = False
        self._munge_marker = self.root / "run" / "munged.started-by-harness"

    # ------------------------------------------------------------------ public API

    def start(self) -> LocalSlurm:
        """Install (if needed), configure and start munge + SLURM; wait for an idle node."""
        t0 = time.monotonic()
        self._phase("check", self.check)
        self._phase("lock", self._lock)
        self._phase("install", self.install)
        self._phase("munge", self._start_munge)
        self._phase("config", self._write_config)
        self._phase("daemons", self._start_daemons)
        self.timings["total"] = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop slurmd, slurmctld (and munged if started here) by their pid files."""
        _kill_pidfile(self.slurmd_pidfile, "slurmd")
        _kill_pidfile(self.ctld_pidfile, "slurmctld")
        if self.started_munged or self._munge_marker.exists():
            _kill_pidfile(MUNGE_PIDFILE, "munged")
            with contextlib.suppress(OSError):
                self._munge_marker.unlink()
            self.started_munged = False
        for name in ("slurm.conf", "gres.conf"):
            link = ETC_SLURM / name
            if link.is_symlink() and Path(os.readlink(link)).parent == self.conf.parent:
                link.unlink()
        self._unlock()

    def env(self, extra_path: str | os.PathLike | None = None) -> dict[str, str]:
        """Environment for clients (sbatch, snakemake): SLURM_CONF and a PATH with SLURM on it.

        `extra_path` (e.g. a virtualenv's bin) goes first on PATH; jobs inherit the submitting
        environment (`--export=ALL`), so this is how the job step finds `python -m snakemake`.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        path = env.get("PATH", "")
        parts = [str(extra_path)] if extra_path else []
        parts += [p for p in (path + ":" + SBIN_PATH).split(":") if p]
        env["PATH"] = ":".join(dict.fromkeys(parts))
        env["SLURM_CONF"] = str(self.conf)
        return env

    def run(self, *cmd: str, timeout: float = 30) -> str:
        """Run a SLURM client command against this cluster and return its stdout."""
        return _run(list(cmd), timeout=timeout, env=self.env()).stdout

    def node_state(self) -> str:
        out = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%t")
        return out.strip().splitlines()[0] if out.strip() else ""

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller still remembers (MinJobAge), as `scontrol show job` dicts."""
        out = self.run("scontrol", "show", "job", "--oneliner")
        return [parse_scontrol_record(line) for line in out.splitlines() if line.strip()]

    def logs_tail(self, lines: int = 30) -> str:
        parts = []
        for log in (self.ctld_log, self.slurmd_log):
            try:
                text = log.read_text(errors="replace").splitlines()[-lines:]
            except OSError as exc:
                text = [f"(unreadable: {exc})"]
            parts.append(f"--- {log} (last {lines} lines)\n" + "\n".join(text))
        return "\n".join(parts)

    # ------------------------------------------------------------------ phases

    def _phase(self, name: str, fn) -> None:
        t = time.monotonic()
        fn()
        self.timings[name] = time.monotonic() - t

    def _lock(self) -> None:
        """Wait for (then hold until stop) the machine-wide harness lock.

        One machine hosts one local SLURM (fixed ports, /etc/slurm): a second test session
        started beside a running one would otherwise stop its daemons as leftovers. The lock
        is an flock, so a killed session releases it.
        """
        if self._lock_fd is not None:
            return
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise SlurmStartError(
                        f"another session held {self.lock_path} for {self.lock_timeout:.0f} s"
                    ) from None
                time.sleep(1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    def check(self) -> None:
        """Raise SlurmUnavailable unless this machine can host the local SLURM."""
        if not sys.platform.startswith("linux"):
            raise SlurmUnavailable(f"local SLURM needs Linux (this is {sys.platform})")
        if os.geteuid() != 0:
            raise SlurmUnavailable("local SLURM needs root (to install packages, run daemons)")
        if self._missing_binaries() and not _which("apt-get"):
            raise SlurmUnavailable(
                f"SLURM/munge not installed ({', '.join(self._missing_binaries())} missing) "
                "and no apt-get to install them (Debian/Ubuntu only)"
            )
        link = ETC_SLURM / "slurm.conf"
        if link.exists() and not link.is_symlink():
            raise SlurmUnavailable(
                f"{link} is a real file: a SLURM is already configured here; the harness will "
                "not replace it"
            )

    def install(self) -> None:
        """apt-get install the SLURM and munge packages, keeping their services from starting."""
        if not self._missing_binaries():
            return
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", PATH=SBIN_PATH)
        own_policy = not POLICY_RC_D.exists()
        if own_policy:
            POLICY_RC_D.write_text(POLICY_RC_D_TEXT)
            POLICY_RC_D.chmod(0o755)
        try:
            _run(["apt-get", "update"], timeout=300, env=env)
            _run(
                ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
                timeout=600,
                env=env,
            )
        finally:
            if own_policy:
                with contextlib.suppress(OSError):
                    POLICY_RC_D.unlink()
        if missing := self._missing_binaries():
            raise SlurmStartError(f"installed {PACKAGES} but still missing: {missing}")

    # ------------------------------------------------------------------ munge

    def _munge_works(self) -> bool:
        try:
            cred = _run([_which("munge") or "munge", "-n"], timeout=10).stdout
            _run([_which("unmunge") or "unmunge"], timeout=10, input=cred)
        except SlurmStartError:
            return False
        return True

    def _start_munge(self) -> None:
        pid = _read_pid(MUNGE_PIDFILE)
        if pid is not None and _alive(pid, "munged") and self._munge_works():
            # Reuse a working munged; remember if it was ours from an earlier unclean run.
            self.started_munged = self._munge_marker.exists()
            return
        if pid is not None and _alive(pid, "munged"):
            _kill_pidfile(MUNGE_PIDFILE, "munged")
        for d in MUNGE_DIRS:
            d.mkdir(parents=True, exist_ok=True)
            shutil.chown(d, "munge", "munge")
        MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
        if not MUNGE_KEY.exists():
            _run([_which("mungekey") or "mungekey", "--create", "--keyfile", str(MUNGE_KEY)])
        shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_KEY.chmod(0o400)
        # --force: start even if an unclean stop left a stale socket behind.
        _run([_which("munged") or "munged", "--force"], user="munge", group="munge", timeout=30)
        self.started_munged = True
        self._munge_marker.parent.mkdir(parents=True, exist_ok=True)
        self._munge_marker.write_text("munged was started by the harness\n")
        deadline = time.monotonic() + 10
        while not self._munge_works():
            if time.monotonic() > deadline:
                raise SlurmStartError("munged started but `munge -n | unmunge` keeps failing")
            time.sleep(0.1)

    # ------------------------------------------------------------------ slurm

    def slurm_conf_text(self) -> str:
        cpus = os.cpu_count() or 1
        mem = int(_mem_total_mb() * 0.9)
        r = self.root
        return f"""\
# Written by microdiff's test harness (tests/cluster/slurm.py); removed with it.
ClusterName=localcluster
SlurmctldHost={self.node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={self.state_dir}
SlurmdSpoolDir={self.slurmd_spool}
SlurmctldPidFile={self.ctld_pidfile}
SlurmdPidFile={self.slurmd_pidfile}
SlurmctldLogFile={self.ctld_log}
SlurmdLogFile={self.slurmd_log}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
MinJobAge={self.min_job_age}
DefMemPerCPU=1000
GresTypes=gpu
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} Gres=gpu:fake:{self.gpus} \
State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
PartitionName={self.gpu_partition} Nodes={self.node} Default=NO MaxTime=INFINITE State=UP
# harness dir: {r}
"""

    def gres_conf_text(self) -> str:
        lines = [f"NodeName={self.node} Name=gpu Type=fake File={dev}\n" for dev in GPU_DEVICES]
        return "AutoDetect=off\n" + "".join(lines[: self.gpus])

    def _write_config(self) -> None:
        for d in (self.conf.parent, self.ctld_pidfile.parent, self.ctld_log.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.slurm_conf_text())
        self.gres_conf.write_text(self.gres_conf_text())
        ETC_SLURM.mkdir(parents=True, exist_ok=True)
        for name, target in (("slurm.conf", self.conf), ("gres.conf", self.gres_conf)):
            link = ETC_SLURM / name
            if link.is_symlink() or (name == "gres.conf" and link.exists()):
                link.unlink()
            link.symlink_to(target)

    def _start_daemons(self) -> None:
        # Whatever a previous unclean run left behind goes first (by pid file only).
        t = time.monotonic()
        _kill_pidfile(self.slurmd_pidfile, "slurmd")
        _kill_pidfile(self.ctld_pidfile, "slurmctld")
        self.timings["stop_leftovers"] = time.monotonic() - t
        shutil.rmtree(self.state_dir, ignore_errors=True)
        shutil.rmtree(self.slurmd_spool, ignore_errors=True)
        self.state_dir.mkdir(parents=True)
        self.slurmd_spool.mkdir(parents=True)
        for log in (self.ctld_log, self.slurmd_log):
            with contextlib.suppress(OSError):
                log.unlink()
        env = self.env()
        _run([_which("slurmctld") or "slurmctld", "-i", "-f", str(self.conf)], env=env)
        _run([_which("slurmd") or "slurmd", "-N", self.node, "-f", str(self.conf)], env=env)
        t0 = time.monotonic()
        deadline = t0 + self.startup_timeout
        state = ""
        while time.monotonic() < deadline:
            # A daemon that died (a fatal config error) fails now, not at the timeout.
            if time.monotonic() - t0 > 3 and (dead := self._dead_daemons()):
                raise SlurmStartError(
                    f"{', '.join(dead)} not running after start\n{self.logs_tail()}"
                )
            with contextlib.suppress(SlurmStartError):
                state = self.node_state()
                if state == "idle":
                    return
                if state.startswith("drain"):
                    self.run("scontrol", "update", f"nodename={self.node}", "state=resume")
            time.sleep(0.1)
        raise SlurmStartError(
            f"node {self.node} not idle after {self.startup_timeout:.0f} s "
            f"(sinfo state: {state or 'none'})\n{self.logs_tail()}"
        )

    def _dead_daemons(self) -> list[str]:
        dead = []
        for pidfile, comm in ((self.ctld_pidfile, "slurmctld"), (self.slurmd_pidfile, "slurmd")):
            pid = _read_pid(pidfile)
            if pid is None or not _alive(pid, comm):
                dead.append(comm)
        return dead

    def _missing_binaries(self) -> list[str]:
        return [b for b in BINARIES if _which(b) is None]


def parse_scontrol_record(line: str) -> dict[str, str]:
    """Parse one `scontrol show ... --oneliner` record into {Key: value}.

    Values never contain spaces except the last free-text ones; a token without `=` is
    appended to the previous value.
    """
    record: dict[str, str] = {}
    key = None
    for token in line.split():
        k, sep, v = token.partition("=")
        if sep and k and k[0].isalpha():
            key, record[k] = k, v
        elif key is not None:
            record[key] += " " + token
    return record


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "status"
    harness = LocalSlurm()
    if cmd == "start":
        harness.start()
        print({k: round(v, 2) for k, v in harness.timings.items()})
    elif cmd == "stop":
        harness.stop()
    else:
        print(harness.node_state())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
