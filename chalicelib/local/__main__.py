"""`python -m chalicelib.local`: the whole registry on this machine, in one process.

Starts moto's server as the AWS stand-in (unless AWS_ENDPOINT_URL already points at
LocalStack or real AWS is meant), keeping its data in --data-dir (written through before
each answer), creates the bucket and tables, and serves the app.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = ".stratus/data"


def _stop_on_sigterm() -> None:
    """SIGTERM stops the server as Ctrl-C does (data is already on disk either way)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    parser = argparse.ArgumentParser(prog="stratus-local", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--quiet", action="store_true", help="no access log")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("STRATUS_DATA_DIR") or DEFAULT_DATA_DIR),
        help=f"where the embedded moto keeps its data (STRATUS_DATA_DIR; {DEFAULT_DATA_DIR})",
    )
    args = parser.parse_args()
    if os.environ.get("STRATUS_DATA_DIR") or args.data_dir != Path(DEFAULT_DATA_DIR):
        # A data folder of one's own holds its own token signing key too.
        os.environ.setdefault("STRATUS_SIGNING_KEY_FILE", str(args.data_dir / "signing-key.pem"))

    from chalicelib.local import stack

    if os.environ.get("STRATUS_RECORD_AWS_CALLS"):
        from chalicelib.storage import calls

        calls.install(Path(os.environ["STRATUS_RECORD_AWS_CALLS"]))

    use_real_endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("STRATUS_USE_AWS")
    store = None
    if not use_real_endpoint:
        from chalicelib.local import persistence

        try:
            store = persistence.open_store(args.data_dir)
        except persistence.DataDirInUse as error:
            raise SystemExit(f"stratus-local: {error}") from None
        import moto

        if store.written_by not in (None, moto.__version__):
            print(
                f"warning: {args.data_dir} was written by moto {store.written_by}, this is "
                f"{moto.__version__}; if the registry misbehaves, start empty (make run-fresh)",
                flush=True,
            )
        stack.start_moto(int(os.environ.get("MOTO_PORT", "0")) or None)
    if os.environ.get("STRATUS_PROVISION", "1") != "0":
        stack.provision()  # off when infra/stratus.yaml made the tables and bucket
    restored = ""
    if store is not None:
        from chalicelib import config as settings_module

        items, objects = persistence.restore(store, settings_module.settings.region)
        restored = f"data: {args.data_dir}, {items} items and {objects} objects restored; "

    from app import app
    from chalicelib.local.server import make_server

    server = make_server(app, args.host, args.port, quiet=args.quiet)
    from chalicelib import config

    settings = config.settings
    access = (
        f"auth on, bootstrap admin {settings.admin_user or '(none: set STRATUS_ADMIN_USER)'}"
        if settings.auth
        else "open: anyone may push (STRATUS_AUTH=1 makes it private)"
    )
    print(
        f"Stratus registry on http://{args.host}:{args.port}/v2/  "
        f"({restored}AWS: {os.environ.get('AWS_ENDPOINT_URL', 'real AWS')}; {access})\n"
        f"Web console on http://{args.host}:{args.port}/",
        flush=True,
    )
    from chalicelib.local import background

    # As on AWS: the stream functions and the scheduled cleanup run beside the API (not
    # against a real AWS stage, whose own functions do that).
    stop_background = (
        background.start() if not os.environ.get("STRATUS_USE_AWS") else background.Event()
    )
    _stop_on_sigterm()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    stop_background.set()
    server.server_close()
    if store is not None:
        store.close()


if __name__ == "__main__":
    main()
