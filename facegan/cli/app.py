"""facegan-app: a web app for a generator (Gradio): grids for a seed and a count, a truncation
slider, interpolation strips and GIFs between two seeds; every image downloads as PNG.

SOURCE is a run directory (its newest checkpoint), a checkpoint directory, an exported
.safetensors, a Hub folder (facegan-export --hub-dir) or a Hub repo id (user/name). The app
listens on 127.0.0.1 (this machine only) unless --host says otherwise.
"""

import argparse
import os
import socket
import sys

from ..errors import UserError, cli_entry
from ..log import get_logger

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
SHARE_SERVER = ("api.gradio.app", 443)  # what `--share` has to reach to get a gradio.live link

log = get_logger("facegan-app")


def build_parser():
    p = argparse.ArgumentParser(prog="facegan-app", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  facegan-app runs/demo                       # http://127.0.0.1:7860
  facegan-app hub/demo --port 8080
  facegan-app me/cartoon-faces --host 0.0.0.0 # reachable from other machines: says so
""")
    p.add_argument("source", help="run dir, checkpoint dir, export .safetensors, Hub folder or Hub repo id")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--share", action="store_true", help="also ask gradio.live for a public link (needs internet)")
    p.add_argument("--device", default="cpu", help="torch device for the generator (default cpu)")
    return p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_share_reachable() -> None:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("GRADIO_OFFLINE") == "1":
        raise UserError("--share needs the internet (gradio.live) and this environment is offline; "
                        "use --host 0.0.0.0 to serve your network instead")
    try:
        socket.create_connection(SHARE_SERVER, timeout=5).close()
    except OSError as err:
        raise UserError(f"--share needs the internet: {SHARE_SERVER[0]} is not reachable ({err.__class__.__name__}); "
                        f"use --host 0.0.0.0 to serve your network instead") from None


@cli_entry("facegan-app")
def main(argv=None):
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: must be in 0..65535")
    if args.share:
        _check_share_reachable()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    log.warning(f"loading {args.source} and the app ...")  # stderr, beside the error line a failed load ends in
    from ..share.model import FaceGenerator

    G = FaceGenerator.from_pretrained(args.source, map_location=args.device)
    from ..app.ui import build_app

    title = os.path.basename(os.path.normpath(args.source)) or "facegan"
    demo = build_app(G, title=title)
    port = args.port or _free_port()
    if args.host not in LOCAL_HOSTS:
        log.warning(f"warning: listening on {args.host}: anyone who can reach this machine on port "
                    f"{port} can use the app")
    try:
        demo.launch(server_name=args.host, server_port=port, share=args.share, quiet=True,
                    prevent_thread_lock=True, show_error=True)
    except OSError as err:
        raise UserError(f"cannot listen on {args.host}:{port} ({str(err).splitlines()[0]})") from None
    if args.share and not demo.share_url:
        demo.close()
        raise UserError("--share: gradio.live gave no public link (offline or refused)")
    host = f"[{args.host}]" if ":" in args.host else args.host
    log.info(f"serving {G.resolution}x{G.resolution} generator from {args.source} at "
             f"http://{host}:{port}/" + (f" and {demo.share_url}" if args.share else "") + "  (Ctrl-C stops)")
    try:
        demo.block_thread()
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
