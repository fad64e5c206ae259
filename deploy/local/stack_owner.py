"""Who started the server listening on a local port: this checkout's stack, another checkout's, or
something that is no helpdesk stack at all. Used by `deploy/local/stack.sh`; standard library only.

Every server `stack.sh` starts gets an owner file (`key=value` lines: checkout, state_dir, pid,
address, started_at): `<state dir>/kafka/owner` next to Kafka's pid file, `<state dir>/pg.owner`
next to PostgreSQL's data directory (which holds its postmaster.pid). To name the owner of a port,
the listening process is found (`ss -ltnp`, else `lsof`, else /proc/net/tcp and /proc/<pid>/fd),
its command line gives its state dir (Kafka: `kafka.Kafka <state>/kafka/server.properties`;
PostgreSQL: `-D <state>/pg`), and that state dir's owner file gives the checkout. A server started
before owner files existed is still recognised from its command line.

Usage:
  stack_owner.py record kafka|postgres STATE_DIR CHECKOUT PID ADDRESS   write the owner file
  stack_owner.py forget kafka|postgres STATE_DIR                        remove it
  stack_owner.py who kafka|postgres PORT STATE_DIR [CHECKOUT]
      for up and down: "started by …" / "not started by any helpdesk checkout (…)"
  stack_owner.py owner kafka|postgres PORT STATE_DIR [CHECKOUT]
      for status: "this checkout (…)" / "other checkout PATH (…)" / "unknown (…)"
  stack_owner.py version kafka|postgres PORT      the listening server's version, or "version unknown"

`who` and `owner` exit 0 when this state dir started the server, 3 for another helpdesk checkout,
4 for a process that is no helpdesk stack, 5 when the listening process cannot be seen, 1 when
nothing listens.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

OURS, OTHER, FOREIGN, UNSEEN, NOBODY = 0, 3, 4, 5, 1


def owner_file(kind: str, state_dir: Path) -> Path:
    """Where the owner of the `kind` server ("kafka" or "postgres") of a state dir is recorded."""
    return state_dir / "kafka" / "owner" if kind == "kafka" else state_dir / "pg.owner"


def record(kind: str, state_dir: Path, checkout: Path, pid: int, address: str) -> None:
    """Writes the owner file of a server this state dir has just started."""
    path = owner_file(kind, state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path.write_text(f"checkout={checkout}\nstate_dir={state_dir}\npid={pid}\naddress={address}\nstarted_at={started}\n",
                    encoding="utf-8")


def read_owner(kind: str, state_dir: Path) -> dict[str, str]:
    """The owner file's fields, or {} when there is none (or it cannot be read)."""
    try:
        text = owner_file(kind, state_dir).read_text(encoding="utf-8")
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# ---------- which process listens on a port ----------
def _pids_from_ss(port: int) -> list[int]:
    if not shutil.which("ss"):
        return []
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(pid) for pid in re.findall(r"pid=(\d+)", out)]


def _pids_from_lsof(port: int) -> list[int]:
    if not shutil.which("lsof"):
        return []
    try:
        out = subprocess.run(["lsof", "-nP", "-t", f"-iTCP:{port}", "-sTCP:LISTEN"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(pid) for pid in out.split() if pid.isdigit()]


def _pids_from_proc(port: int) -> list[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    pids = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd") if inodes else []:
        try:
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                pids.append(int(fd_dir.parent.name))
        except OSError:
            continue
    return pids


def port_in_use(port: int) -> bool:
    """Whether any process listens on the TCP port (on any address)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(len(f) > 3 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port for f in map(str.split, lines)):
            return True
    return False


def listening_pid(port: int) -> int | None:
    """The process listening on the TCP port, or None when none does or it cannot be seen (another
    user's process, seen without root). The lowest pid wins (PostgreSQL's postmaster, not a child)."""
    for find in (_pids_from_ss, _pids_from_lsof, _pids_from_proc):
        pids = find(port)
        if pids:
            return min(pids)
    return None


def cmdline(pid: int) -> list[str]:
    """The process's arguments ([] when it is gone or cannot be read)."""
    try:
        return [arg.decode(errors="replace") for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if arg]
    except OSError:
        return []


# ---------- whose it is ----------
@dataclass
class Owner:
    """What is known of the process that listens on a port."""

    pid: int | None
    args: list[str]
    state_dir: Path | None = None  # set when it is a helpdesk stack's server
    checkout: Path | None = None  # the checkout that started it, when known

    def relation(self, ours: Path) -> int:
        if self.pid is None:
            return UNSEEN
        if self.state_dir is None:
            return FOREIGN
        return OURS if _same(self.state_dir, ours) else OTHER

    def phrase(self, ours: Path, our_checkout: Path) -> str:
        """For `up` and `down`: "started by …" or "not started by any helpdesk checkout (…)"."""
        relation = self.relation(ours)
        if relation == UNSEEN:
            return "whose owner cannot be seen (the listening process is not visible to this user)"
        if relation == FOREIGN:
            return f"not started by any helpdesk checkout (pid {self.pid}: {_short(self.args)})"
        if relation == OURS and (self.checkout is None or _same(self.checkout, our_checkout)):
            return f"started by this checkout ({our_checkout}, state dir {self.state_dir}, pid {self.pid})"
        return f"started by {self._whose()}"

    def label(self, ours: Path, our_checkout: Path) -> str:
        """For `status`: "this checkout (…)", "other checkout PATH (…)" or "unknown (…)"."""
        relation = self.relation(ours)
        if relation == UNSEEN:
            return "unknown (the listening process is not visible to this user)"
        if relation == FOREIGN:
            return f"unknown (not started by any helpdesk checkout; pid {self.pid}: {_short(self.args)})"
        if relation == OURS and (self.checkout is None or _same(self.checkout, our_checkout)):
            return f"this checkout ({our_checkout}, state dir {self.state_dir}, pid {self.pid})"
        return f"{'this state dir, ' if relation == OURS else ''}other checkout {self._whose()}"

    def _whose(self) -> str:
        gone = "" if self.checkout is None or self.checkout.exists() else ", that checkout no longer exists"
        return f"{self.checkout or '(checkout not known)'} (state dir {self.state_dir}, pid {self.pid}{gone})"


def _same(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _short(args: list[str]) -> str:
    text = " ".join(args) or "command line not readable"
    return text if len(text) <= 120 else text[:117] + "..."


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def _kafka_state(args: list[str]) -> tuple[Path | None, Path | None]:
    """(state dir, checkout) of a broker `stack.sh` started, from its command line."""
    props = _option(args, "kafka.Kafka")
    if props is None or not props.endswith("/kafka/server.properties"):
        return None, None
    state = Path(props).parent.parent
    checkout = None
    for arg in args:  # -Dlog4j.configuration=file:<checkout>/deploy/local/kafka/log4j.properties
        found = re.fullmatch(r"-Dlog4j\.configuration=file:(.+)/deploy/local/kafka/log4j\.properties", arg)
        if found:
            checkout = Path(found.group(1))
    return state, checkout


def _postgres_state(args: list[str]) -> tuple[Path | None, Path | None]:
    data = _option(args, "-D")
    if data is None or Path(data).name != "pg" or not (Path(data).parent / "logs").is_dir():
        return None, None
    state = Path(data).parent
    # before owner files: the default state dir is <checkout>/.stack
    checkout = state.parent if state.name == ".stack" and (state.parent / "deploy/local/stack.sh").exists() else None
    return state, checkout


def _ours_on(kind: str, port: int, state: Path) -> int | None:
    """The pid of the server this state dir started for that port, if it still runs: the fallback
    when the listening process cannot be seen (PostgreSQL runs as another user)."""
    try:
        if kind == "kafka":
            pid = int((state / "kafka" / "pid").read_text().split()[0])
            listens = f"PLAINTEXT://127.0.0.1:{port}," in (state / "kafka" / "server.properties").read_text()
        else:
            lines = (state / "pg" / "postmaster.pid").read_text().splitlines()
            pid, listens = int(lines[0]), len(lines) > 3 and lines[3].strip() == str(port)
        os.kill(pid, 0)
    except PermissionError:  # it runs, as another user
        return pid if listens else None
    except (OSError, ValueError, IndexError):
        return None
    return pid if listens else None


def identify(kind: str, port: int, ours: Path | None = None) -> Owner | None:
    """The owner of the server listening on the port; None when nothing listens. `ours` (this
    checkout's state dir) is the fallback when the listening process cannot be seen."""
    pid = listening_pid(port)
    if pid is None:
        if not port_in_use(port):
            return None
        mine = _ours_on(kind, port, ours) if ours is not None else None
        if mine is None:
            return Owner(None, [])
        checkout = read_owner(kind, ours).get("checkout")
        return Owner(mine, cmdline(mine), ours, Path(checkout) if checkout else None)
    args = cmdline(pid)
    state, checkout = (_kafka_state if kind == "kafka" else _postgres_state)(args)
    if state is not None:
        recorded = read_owner(kind, state).get("checkout")
        checkout = Path(recorded) if recorded else checkout
    return Owner(pid, args, state, checkout)


def version(kind: str, port: int) -> str:
    """The version of the server listening on the port, from the process itself: Kafka's from the
    jars on its classpath, PostgreSQL's from its binary. "unknown" when it cannot be told."""
    pid = listening_pid(port)
    args = cmdline(pid) if pid else []
    if kind == "kafka":
        classpath = _option(args, "-cp") or _option(args, "-classpath") or ""
        for entry in classpath.split(":"):
            jars = sorted(Path(entry.rstrip("*")).glob("kafka_2.13-*.jar")) if entry.endswith("*") else []
            if jars:
                return "Kafka " + jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar")
        return "version unknown"
    if args and os.path.isabs(args[0]) and os.access(args[0], os.X_OK):
        try:
            out = subprocess.run([args[0], "--version"], capture_output=True, text=True, timeout=10).stdout.split()
            return f"PostgreSQL {out[2]}" if len(out) > 2 else "version unknown"
        except (OSError, subprocess.SubprocessError):
            pass
    return "version unknown"


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        raise SystemExit(__doc__)
    command, kind = argv[1], argv[2]
    if kind not in ("kafka", "postgres"):
        raise SystemExit(f"unknown server kind {kind!r}: kafka or postgres")
    if command == "record":
        record(kind, Path(argv[3]), Path(argv[4]), int(argv[5]), argv[6])
        return 0
    if command == "forget":
        owner_file(kind, Path(argv[3])).unlink(missing_ok=True)
        return 0
    if command in ("who", "owner"):
        state = Path(argv[4])
        owner = identify(kind, int(argv[3]), state)
        if owner is None:
            print("nothing listens")
            return NOBODY
        checkout = Path(argv[5]) if len(argv) > 5 else Path(__file__).resolve().parents[2]
        print(owner.phrase(state, checkout) if command == "who" else owner.label(state, checkout))
        return owner.relation(state)
    if command == "version":
        print(version(kind, int(argv[3])))
        return 0
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
