# SPDX-License-Identifier: MIT
"""Real, throwaway database services for coil's tests and benchmarks: a PostgreSQL cluster seeded
with HttpArena's items table, and a Redis server. Standard library only.

    import services                     # with tools/ on sys.path
    with services.PostgresServer(rows=100000) as pg, services.RedisServer() as rd:
        os.environ["DATABASE_URL"] = pg.url   # postgres://bench:bench@127.0.0.1:PORT/benchmark
        pg.psql("SELECT count(*) FROM items")   # "100000\\n" (unaligned, tuples only)
        pg.restart(); pg.kill_connections(); rd.restart()

PostgresServer runs initdb in a new directory under /tmp (or the given one), listens on 127.0.0.1
only (a free port, or the given one) with its unix socket inside that directory, and trades
durability for speed (fsync, synchronous_commit and full_page_writes off). As root it runs the
server as `nobody`, since PostgreSQL refuses root. Role bench (password bench) owns database
benchmark, whose table items holds item_rows(rows, 42), the generator of tools/dataset with
prices 1..500. RedisServer runs redis-server without persistence. stop() ends the server and
removes the directory (unless keep=True); restart() stops and starts the same server on the same
port (PostgreSQL keeps its data). Every wait is bounded; a failure raises ServiceError with the
end of the server's log, after undoing what start() did. Servers not started with detach=True
are also stopped when Python exits normally (not on SIGTERM or SIGKILL). tools/db is the
command-line front end.
"""
import atexit
import concurrent.futures
import importlib.machinery
import importlib.util
import json
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

__all__ = ["ServiceError", "PostgresServer", "RedisServer", "free_port", "item_rows"]

TIMEOUT = 30.0  # seconds, for every start, stop and query unless told otherwise
STATE = "service.json"  # in a server's directory: what attach() needs to find it again

ITEMS_SCHEMA = """CREATE TABLE items (
  id integer PRIMARY KEY, name text NOT NULL, category text NOT NULL,
  price integer NOT NULL, quantity integer NOT NULL, active boolean NOT NULL, tags jsonb NOT NULL,
  rating_score integer NOT NULL, rating_count integer NOT NULL);"""
ITEMS_COLUMNS = ("id", "name", "category", "price", "quantity", "active", "tags", "rating_score",
                 "rating_count")


class ServiceError(RuntimeError):
    """A service could not be started, stopped or queried."""


# ---- helpers -------------------------------------------------------------------------------

def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on. Chosen below the kernel's ephemeral range when possible, so
    that outgoing connections do not take it while a server restarts."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rnd = random.Random()  # not the global generator, which tests may have seeded
    if low > 11024:
        for _ in range(64):
            port = rnd.randrange(10000, low)
            if _bindable(host, port):
                return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _bindable(host, port):
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


_dataset = None


def _dataset_module():
    global _dataset
    if _dataset is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dataset")
        loader = importlib.machinery.SourceFileLoader("coil_tools_dataset", path)
        spec = importlib.util.spec_from_loader(loader.name, loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        _dataset = module
    return _dataset


def item_rows(n, seed=42):
    """The n rows of the items table as dicts (tags a list), ids 1..n: tools/dataset's vocabulary,
    draws and ranges, except price 1..500. Deterministic for a given (n, seed)."""
    ds = _dataset_module()
    rnd = random.Random(seed)
    rows = []
    for i in range(1, n + 1):
        name = "%s %s" % (rnd.choice(ds.ADJ), rnd.choice(ds.NOUN))
        category = rnd.choice(ds.CATEGORIES)
        price = rnd.randint(1, 500)
        quantity = rnd.randint(1, 100)
        active = rnd.random() < 0.6
        tags = rnd.sample(ds.TAGS, rnd.randint(1, 4))
        rows.append({"id": i, "name": name, "category": category, "price": price,
                     "quantity": quantity, "active": active, "tags": tags,
                     "rating_score": rnd.randint(1, 50), "rating_count": rnd.randint(1, 500)})
    return rows


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(rows):
    """rows in COPY's text format, columns in ITEMS_COLUMNS order."""
    text = {}  # escaped names, categories and tag lists: the vocabulary is small

    def esc(s):
        e = text.get(s)
        if e is None:
            e = text[s] = s.translate(_COPY_ESCAPES)
        return e

    def tags(t):
        key = tuple(t)
        e = text.get(key)
        if e is None:
            e = text[key] = json.dumps(t).translate(_COPY_ESCAPES)
        return e

    out = []
    for r in rows:
        out.append("%d\t%s\t%s\t%d\t%d\t%s\t%s\t%d\t%d\n" % (
            r["id"], esc(r["name"]), esc(r["category"]), r["price"], r["quantity"],
            "t" if r["active"] else "f", tags(r["tags"]), r["rating_score"], r["rating_count"]))
    return "".join(out)


def _log_tail(path, lines=25):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(no log: %s)" % e
    tail = text.splitlines()[-lines:]
    return "\n".join("    " + line for line in tail) if tail else "    (log empty)"


def _env(home=None):
    """The environment for the servers and psql: none of the caller's PG* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["PGCLIENTENCODING"] = "UTF8"
    if home:
        env["HOME"] = home
    return env


def _make_dir(dir, prefix):
    """(absolute path, created) for dir, or for a new directory under /tmp when dir is None. A
    given directory is created if missing and must be empty."""
    if dir is None:
        return tempfile.mkdtemp(prefix=prefix, dir="/tmp"), True
    dir = os.path.abspath(dir)
    if os.path.isdir(dir):
        if os.listdir(dir):
            raise ServiceError("%s is not empty" % dir)
        return dir, False
    os.makedirs(dir, mode=0o755)
    return dir, True


def _read_state(dir, kind):
    path = os.path.join(os.path.abspath(dir), STATE)
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        raise ServiceError("%s: not a %s service directory (%s)" % (dir, kind, e))
    if state.get("kind") != kind:
        raise ServiceError("%s holds a %s service, not %s" % (dir, state.get("kind"), kind))
    return state


def _write_state(dir, state):
    with open(os.path.join(dir, STATE), "w") as f:
        json.dump(state, f)
        f.write("\n")


def _pg_bindir():
    env = os.environ.get("COIL_PG_BINDIR")
    if env:
        return env
    candidates = []
    try:
        for v in os.listdir("/usr/lib/postgresql"):
            if v.isdigit() and os.path.isfile("/usr/lib/postgresql/%s/bin/initdb" % v):
                candidates.append(int(v))
    except OSError:
        pass
    if 15 in candidates:
        return "/usr/lib/postgresql/15/bin"
    if candidates:
        return "/usr/lib/postgresql/%d/bin" % max(candidates)
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise ServiceError("no PostgreSQL server binaries (apt-get install -y postgresql-15, or set "
                       "COIL_PG_BINDIR)")


def _traversable(path, uid, gid):
    """Whether a process with (uid, gid) and no other group can reach path: every ancestor must
    grant it search permission."""
    p = os.path.dirname(path)
    while True:
        st = os.stat(p)
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
        if p == "/":
            return True
        p = os.path.dirname(p)


# ---- PostgreSQL ----------------------------------------------------------------------------

class PostgresServer:
    """A throwaway PostgreSQL cluster: role bench, database benchmark, table items.

    dir: its directory (created; must be empty), default a new one under /tmp. port: default
    free_port(). rows: items rows to seed. max_connections, settings (extra postgresql.conf
    {name: value}), bindir (default COIL_PG_BINDIR or the newest /usr/lib/postgresql/N/bin), user
    (the account the server runs as when we are root), keep (leave the directory on stop),
    detach (do not stop when Python exits), timeout (seconds, for each wait)."""

    def __init__(self, dir=None, port=None, rows=100000, max_connections=256, settings=None,
                 bindir=None, user="nobody", keep=False, detach=False, timeout=TIMEOUT):
        if rows < 0:
            raise ValueError("rows must be at least 0")
        self.dir = dir
        self.port = port
        self.rows = rows
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.bindir = bindir
        self.user = user
        self.keep = keep
        self.detach = detach
        self.timeout = timeout
        self._auto_port = port is None
        self._created = False
        self._started = False
        self._owner = None  # (uid, gid) the server runs as, or None for ourselves

    # -- paths and URLs

    @property
    def url(self):
        return "postgres://bench:bench@127.0.0.1:%d/benchmark" % self.port

    @property
    def data_dir(self):
        return os.path.join(self.dir, "data")

    @property
    def socket_dir(self):
        return os.path.join(self.dir, "sock")

    @property
    def log_path(self):
        return os.path.join(self.dir, "postgres.log")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "PostgresServer(dir=%r, port=%r)" % (self.dir, self.port)

    # -- life cycle

    def start(self):
        """Create, start and seed the cluster; returns self. On failure undoes it all (the
        directory stays if keep=True) and raises ServiceError."""
        if self._started:
            raise ServiceError("already started")
        self.bindir = self.bindir or _pg_bindir()
        self.dir, self._created = _make_dir(self.dir, "coil-pg-")
        pool = concurrent.futures.ThreadPoolExecutor(1)  # the rows, while initdb runs
        try:
            rows = pool.submit(lambda: _copy_text(item_rows(self.rows)))
            self._set_owner()
            if len(os.path.join(self.socket_dir, ".s.PGSQL.65535")) > 107:
                raise ServiceError("%s: path too long for a unix socket; use a shorter dir"
                                   % self.dir)
            os.mkdir(self.socket_dir, 0o700)
            self._chown(self.socket_dir)
            self._run([self._bin("initdb"), "-D", self.data_dir, "-U", "postgres",
                       "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
                       "--locale=C", "--no-sync", "--no-instructions"],
                      owner=True, what="initdb")
            with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
                f.write("\ninclude 'coil.conf'\n")
            for attempt in range(5):
                if self.port is None:
                    self.port = free_port()
                self._write_conf()
                try:
                    self.start_server()
                    break
                except ServiceError:
                    if not (self._auto_port and attempt < 4 and self._port_taken()):
                        raise
                    self.port = None
            _write_state(self.dir, {"kind": "postgres", "port": self.port, "bindir": self.bindir,
                                    "rows": self.rows, "owner": self._owner})
            self._seed(rows.result())
        except BaseException:
            self._undo()
            raise
        finally:
            pool.shutdown()
        if not self.detach:
            atexit.register(self._at_exit)
        return self

    @classmethod
    def attach(cls, dir, keep=False, timeout=TIMEOUT):
        """The server of a directory a (possibly other) process started, to query or stop."""
        state = _read_state(dir, "postgres")
        pg = cls(dir=os.path.abspath(dir), port=state["port"], rows=state.get("rows", 0),
                 bindir=state["bindir"], keep=keep, detach=True, timeout=timeout)
        pg._owner = tuple(state["owner"]) if state.get("owner") else None
        pg._created = True
        pg._started = True
        return pg

    def stop(self):
        """Stop the server (fast shutdown) and remove the directory unless keep=True."""
        self.stop_server()  # on failure the directory stays: the server may still use it
        self._started = False
        atexit.unregister(self._at_exit)
        if not self.keep and self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)

    def stop_server(self):
        """Stop the server, keeping its data and port; start_server() brings it back."""
        if not self.dir or not os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            return
        try:
            self._pg_ctl("stop", "-m", "fast")
        except ServiceError:
            self._pg_ctl("stop", "-m", "immediate")

    def start_server(self):
        """Start the (stopped) server on its port and wait until it accepts connections."""
        self._pg_ctl("start", "-l", self.log_path)
        self._started = True

    def restart(self):
        """stop_server() then start_server(): a database restart, same port, data kept."""
        self.stop_server()
        self.start_server()

    def running(self):
        """Whether the postmaster runs (pg_ctl status)."""
        if not self.dir:
            return False
        p = self._run([self._bin("pg_ctl"), "status", "-D", self.data_dir], owner=True,
                      check=False, what="pg_ctl status")
        return p.returncode == 0

    # -- queries

    def psql(self, sql, user="bench", dbname="benchmark", timeout=None):
        """Run sql (one or more statements, or psql commands) through psql over the unix socket
        as user, stopping at the first error; returns its output, unaligned and tuples only."""
        p = self._run([self._bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                       "-h", self.socket_dir, "-p", str(self.port), "-U", user, "-d", dbname,
                       "-f", "-"], input=sql, timeout=timeout, what="psql")
        return p.stdout

    def kill_connections(self):
        """Terminate every backend of user bench (as superuser postgres); returns how many."""
        out = self.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE usename = 'bench' AND pid <> pg_backend_pid();",
                        user="postgres", dbname="postgres")
        return int(out.strip() or 0)

    # -- internals

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _set_owner(self):
        if os.geteuid() != 0:
            return
        try:
            pw = pwd.getpwnam(self.user)
        except KeyError:
            raise ServiceError("no user %r to run PostgreSQL as (it refuses root)" % self.user)
        self._owner = (pw.pw_uid, pw.pw_gid)
        if not _traversable(self.dir, pw.pw_uid, pw.pw_gid):
            raise ServiceError("%s: user %s cannot reach it (a parent directory lacks search "
                               "permission); use a directory under /tmp" % (self.dir, self.user))
        self._chown(self.dir)
        os.chmod(self.dir, 0o700)

    def _chown(self, path):
        if self._owner:
            os.chown(path, *self._owner)

    def _write_conf(self):
        def quote(v):
            return "'%s'" % str(v).replace("'", "''")
        conf = {"listen_addresses": quote("127.0.0.1"), "port": self.port,
                "unix_socket_directories": quote(self.socket_dir),
                "max_connections": self.max_connections, "fsync": "off",
                "synchronous_commit": "off", "full_page_writes": "off"}
        for k, v in self.settings.items():
            if isinstance(v, bool):
                v = "on" if v else "off"
            conf[k] = v if isinstance(v, (int, float)) else quote(v)
        path = os.path.join(self.data_dir, "coil.conf")
        with open(path, "w") as f:
            f.write("# written by tools/services.py\n")
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        self._chown(path)

    def _port_taken(self):
        tail = _log_tail(self.log_path, 10)
        return "already in use" in tail or "could not create any TCP/IP sockets" in tail

    def _seed(self, copy_text):
        script = ["CREATE ROLE bench LOGIN PASSWORD 'bench';",
                  "CREATE DATABASE benchmark OWNER bench;",
                  "\\connect benchmark bench",
                  ITEMS_SCHEMA,
                  "COPY items (%s) FROM STDIN;" % ", ".join(ITEMS_COLUMNS),
                  copy_text + "\\.",
                  "ANALYZE items;", ""]
        self.psql("\n".join(script), user="postgres", dbname="postgres",
                  timeout=max(self.timeout, 120))
        # the URL's way in: TCP, password, scram-sha-256
        env = _env()
        env["PGCONNECT_TIMEOUT"] = "10"
        p = subprocess.run([self._bin("psql"), "-X", "-A", "-t", "-c", "SELECT 1", self.url],
                           capture_output=True, text=True, env=env, timeout=self.timeout)
        if p.returncode != 0 or p.stdout.strip() != "1":
            raise ServiceError("cannot connect to %s: %s\n%s" % (self.url, p.stderr.strip(),
                                                                _log_tail(self.log_path)))

    def _pg_ctl(self, action, *args):
        t = str(int(self.timeout))
        self._run([self._bin("pg_ctl"), action, "-D", self.data_dir, "-w", "-t", t, "-s"]
                  + list(args), owner=True, timeout=self.timeout + 10, what="pg_ctl " + action)

    def _run(self, cmd, owner=False, input=None, timeout=None, check=True, what=None):
        kw = {}
        if owner and self._owner:
            kw = {"user": self._owner[0], "group": self._owner[1], "extra_groups": []}
        timeout = timeout or self.timeout
        try:
            p = subprocess.run(cmd, input=input, capture_output=True, text=True, cwd=self.dir,
                               env=_env(self.dir if kw else None), timeout=timeout, **kw)
        except subprocess.TimeoutExpired:
            raise ServiceError("%s: no answer in %g s (%s)\n%s" % (
                what, timeout, self.dir, _log_tail(self.log_path)))
        if check and p.returncode != 0:
            raise ServiceError("%s failed (exit %d): %s\n%s" % (
                what, p.returncode, (p.stderr or p.stdout).strip()[-2000:],
                _log_tail(self.log_path)))
        return p

    def _undo(self):
        try:
            if self.dir and os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
                self._pg_ctl("stop", "-m", "immediate")
        except ServiceError:
            pass
        finally:
            self._started = False
            if not self.keep and self._created and self.dir:
                shutil.rmtree(self.dir, ignore_errors=True)
            elif not self.keep and self.dir and os.path.isdir(self.dir):
                for name in os.listdir(self.dir):  # a given directory: empty it again
                    path = os.path.join(self.dir, name)
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        os.unlink(path)

    def _at_exit(self):
        try:
            self.stop()
        except Exception:
            pass


# ---- Redis ---------------------------------------------------------------------------------

class RedisServer:
    """A throwaway redis-server on 127.0.0.1 without persistence, run as a child process.

    dir: its directory (created; must be empty), default a new one under /tmp. port: default
    free_port(). binary (default redis-server on PATH), keep, detach (its own session, and not
    stopped when Python exits: it outlives us), timeout: as for PostgresServer."""

    def __init__(self, dir=None, port=None, binary=None, keep=False, detach=False,
                 timeout=TIMEOUT):
        self.dir = dir
        self.port = port
        self.binary = binary
        self.keep = keep
        self.detach = detach
        self.timeout = timeout
        self.pid = None
        self._auto_port = port is None
        self._created = False
        self._proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    @property
    def log_path(self):
        return os.path.join(self.dir, "redis.log")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "RedisServer(dir=%r, port=%r)" % (self.dir, self.port)

    def start(self):
        """Start redis-server and wait until it answers PING; returns self. On failure undoes it
        (the directory stays if keep=True) and raises ServiceError."""
        if self.pid:
            raise ServiceError("already started")
        self.binary = self.binary or shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.isfile(self.binary):
            raise ServiceError("no redis-server (apt-get install -y redis-server)")
        self.dir, self._created = _make_dir(self.dir, "coil-redis-")
        try:
            for attempt in range(5):
                if self.port is None:
                    self.port = free_port()
                try:
                    self.start_server()
                    break
                except ServiceError:
                    if not (self._auto_port and attempt < 4
                            and "already in use" in _log_tail(self.log_path, 5)):
                        raise
                    self.port = None
        except BaseException:
            self._undo()
            raise
        if not self.detach:
            atexit.register(self._at_exit)
        return self

    @classmethod
    def attach(cls, dir, keep=False, timeout=TIMEOUT):
        """The server of a directory a (possibly other) process started, to stop it."""
        state = _read_state(dir, "redis")
        rd = cls(dir=os.path.abspath(dir), port=state["port"], binary=state["binary"],
                 keep=keep, detach=True, timeout=timeout)
        rd.pid = state["pid"]
        rd._created = True
        return rd

    def start_server(self):
        """Start the (stopped) server on its port and wait until it answers PING."""
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--logfile", self.log_path, "--pidfile", os.path.join(self.dir, "redis.pid")]
        with open(self.log_path, "ab") as log:  # early errors, before redis opens its log
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          cwd=self.dir, start_new_session=self.detach)
        self.pid = self._proc.pid
        deadline = time.monotonic() + self.timeout
        while not self.ping():
            if self._proc.poll() is not None:
                self.pid = None
                raise ServiceError("redis-server exited (status %d) on port %d\n%s" % (
                    self._proc.returncode, self.port, _log_tail(self.log_path)))
            if time.monotonic() > deadline:
                self.stop_server()
                raise ServiceError("redis-server: no PONG on port %d in %g s\n%s" % (
                    self.port, self.timeout, _log_tail(self.log_path)))
            time.sleep(0.02)
        _write_state(self.dir, {"kind": "redis", "port": self.port, "pid": self.pid,
                                "binary": self.binary})

    def stop_server(self):
        """Stop the server (SIGTERM, SIGKILL if it lingers), keeping its directory and port."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(self.timeout)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        elif self.pid and self._is_ours(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + self.timeout
            while self._is_ours(self.pid):
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    deadline = time.monotonic() + self.timeout
                time.sleep(0.02)
        self.pid = None

    def restart(self):
        """stop_server() then start_server(): same port, empty data (no persistence)."""
        self.stop_server()
        self.start_server()

    def stop(self):
        """Stop the server and remove the directory unless keep=True."""
        self.stop_server()
        atexit.unregister(self._at_exit)
        if not self.keep and self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)

    def ping(self, timeout=1.0):
        """Whether the server answers PING with PONG (a raw RESP exchange)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                reply = b""
                while not reply.endswith(b"\r\n"):
                    chunk = s.recv(64)
                    if not chunk:
                        break
                    reply += chunk
                return reply == b"+PONG\r\n"
        except OSError:
            return False

    def running(self):
        return self.pid is not None and self._is_ours(self.pid)

    def _is_ours(self, pid):
        """Whether pid is a live (not zombie) redis-server: attach() knows it only by pid."""
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return False
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return b"redis" in f.read()
        except (OSError, IndexError):
            return False

    def _undo(self):
        try:
            self.stop_server()
        finally:
            if not self.keep and self._created and self.dir:
                shutil.rmtree(self.dir, ignore_errors=True)
            elif not self.keep and self.dir and os.path.isdir(self.dir):
                for name in os.listdir(self.dir):
                    os.unlink(os.path.join(self.dir, name))

    def _at_exit(self):
        try:
            self.stop()
        except Exception:
            pass
