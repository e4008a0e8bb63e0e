"""`python -m chalicelib.local`: the whole registry on this machine, in one process.

Starts moto's server as the AWS stand-in (unless AWS_ENDPOINT_URL already points at
LocalStack or real AWS is meant), creates the bucket and tables, and serves the app.
"""

from __future__ import annotations

import argparse
import contextlib
import os


def main() -> None:
    parser = argparse.ArgumentParser(prog="stratus-local", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--quiet", action="store_true", help="no access log")
    args = parser.parse_args()

    from chalicelib.local import stack

    if os.environ.get("STRATUS_RECORD_AWS_CALLS"):
        from pathlib import Path

        from chalicelib.storage import calls

        calls.install(Path(os.environ["STRATUS_RECORD_AWS_CALLS"]))

    use_real_endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("STRATUS_USE_AWS")
    if not use_real_endpoint:
        stack.start_moto(int(os.environ.get("MOTO_PORT", "0")) or None)
    if os.environ.get("STRATUS_PROVISION", "1") != "0":
        stack.provision()  # off when infra/stratus.yaml made the tables and bucket

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
        f"(AWS: {os.environ.get('AWS_ENDPOINT_URL', 'real AWS')}; {access})",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
