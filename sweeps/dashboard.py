"""optuna-dashboard on a sweep's Optuna study, while it runs or after.

    python -m sweeps.dashboard NAME                  # the sweep NAME under ./runs
    python -m sweeps.dashboard --storage-path /shared/runs --port 8081    # the newest sweep there

It reads STORAGE/NAME/optuna.journal (sweeps.study), one study per method: trial history, each
trial's objective per epoch (its intermediate values; ASHA's pruned trials are marked PRUNED),
parallel coordinates and parameter importance. It refreshes as the driver appends to the journal.
With s3:// storage it serves the driver's local copy when run on the driver's machine (live), else
a snapshot downloaded now. It listens on 127.0.0.1 only: the dashboard has no authentication, and
anyone who reaches it can edit the study's notes. On a cluster, forward the port as for Ray's.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from emo.cli import Parser, add_flag, fail
from sweeps import cluster, store, study


def build_parser() -> Parser:
    p = Parser(prog="python -m sweeps.dashboard", description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", metavar="NAME", help="the sweep (default: the newest under --storage-path)")
    add_flag(p, "storage-path", default="runs", help="where the sweep was written (as for sweeps.run)")
    add_flag(p, "port", type=int, default=8080, help="port to listen on (0: any free one)")
    add_flag(p, "host", default="127.0.0.1", help="loopback only (127.0.0.1, ::1, localhost)")
    return p


def find_journal(storage_path: str, name: str | None) -> tuple[str, Path, bool]:
    """(sweep name, journal file, live): the journal the driver writes, or a snapshot of a stored one."""
    root = store.storage_root(storage_path)
    name = name or store.newest_sweep(root)
    if name is None:
        fail(f"no sweep found in {storage_path} (a sweep folder holds {store.SWEEP_FILE}); name one")
    try:
        sweep = store.read_sweep(store.sweep_dir(root, name))
    except store.NotASweep:
        fail(f"{storage_path}/{name} holds no sweep (no {store.SWEEP_FILE})")
    except ValueError as e:
        fail(str(e))
    sweep = sweep.replace(storage=root)  # where sweep.json is now, as --resume reads it
    local = study.journal_path(sweep)
    if local.is_file():
        return name, local, True
    if study.remote(sweep):
        fs, path = store.storage_fs(f"{store.sweep_dir(root, name)}/{study.JOURNAL_FILE}")
        try:
            with fs.open_input_stream(path) as f:
                data = f.read()
        except (FileNotFoundError, OSError):
            data = None
        if data is not None:
            snap = Path(tempfile.mkdtemp(prefix="emo-study-")) / study.JOURNAL_FILE
            snap.write_bytes(data)
            return name, snap, False
    fail(
        f"sweep {name!r} has no Optuna study ({study.JOURNAL_FILE}): it has not started a trial yet, or it was "
        "started by an emo-sweeps that did not keep one"
    )


def serve(journal: Path, host: str, port: int):
    """A threaded WSGI server of optuna-dashboard on `journal`, bound (not yet serving)."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    import optuna_dashboard

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True  # the page polls; one slow request must not hold the others

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):  # one line per poll of the page would bury the address
            pass

    app = optuna_dashboard.wsgi(study.storage(journal))
    return make_server(host, port, app, server_class=Server, handler_class=Quiet)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if not cluster.is_loopback(args.host):
        fail(
            f"--host {args.host}: optuna-dashboard has no authentication; it listens on loopback only. "
            f"From another machine, forward the port: ssh -L {args.port or 8080}:127.0.0.1:{args.port or 8080} HEAD"
        )
    if not 0 <= args.port < 65536:
        fail(f"--port {args.port}: not a port number")
    name, journal, live = find_journal(args.storage_path, args.name)
    try:
        server = serve(journal, args.host, args.port)
    except OSError as e:
        fail(f"cannot listen on {args.host}:{args.port} ({e.strerror or e}); pick another --port (0: any free one)")
    except study.StudyError as e:
        fail(str(e))
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    what = "live" if live else "a snapshot of the stored journal; run this again to refresh it"
    print(f"Optuna dashboard of sweep {name} ({journal}, {what}): http://{shown}:{port}/dashboard/", flush=True)
    print("Ctrl-C stops it.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
