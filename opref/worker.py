"""A validation worker: a fresh interpreter that builds one adapter, then runs what it is sent.

Started as ``<python> -m opref.worker SPEC IN_FD OUT_FD`` (a new process image in a session of
its own: nothing of the parent's onnxruntime or BLAS threads is inherited, and the parent can
end it together with anything it forks). The interpreter may be another environment's: the
parent never imports a runtime. The worker never opens a suite file: each request carries the
model bytes and the named input arrays that the parent verified. Whatever the adapter answers is
checked here and turned into a well-formed :class:`~opref.protocol.Reply`; an adapter bug is an
``error`` reply with the reason, never a dead worker.
"""

from __future__ import annotations

import json
import sys
import traceback

import numpy as np

from opref import reaper
from opref.protocol import Channel, Closed, Hello, ProtocolError, Reply, Request, plain
from opref.runtimes import Outcome, Status, create, split_interpreter


def _error(case: str, message: str) -> Reply:
    return Reply(case, Status.ERROR, message=message)


def answer(adapter, request: Request) -> Reply:
    """Run one request on the adapter and check what it gave back."""
    case = request.case
    try:
        outcome = adapter.run(request.model, dict(request.inputs))
    except Exception as exc:  # an adapter bug must not take the worker down
        return _error(case, f"adapter raised {type(exc).__name__}: {exc}")
    if not isinstance(outcome, Outcome):
        return _error(case, f"adapter returned {type(outcome).__name__}, not an Outcome")
    try:
        status = Status(outcome.status)
    except ValueError:
        return _error(case, f"adapter returned the unknown status {outcome.status!r}")
    output = outcome.output
    if output is not None:
        if not isinstance(output, np.ndarray):
            return _error(case, f"adapter returned an output of type {type(output).__name__}, not an array")
        if output.dtype.hasobject or output.dtype.kind not in "biufcV":
            return _error(case, f"adapter returned an array of element type {output.dtype}")
    if status is Status.OK and output is None:
        return _error(case, "adapter reported success without an output")
    try:
        u = adapter.unit_roundoff(request.dtype)
        u = None if u is None else float(u)
    except Exception as exc:
        return _error(case, f"adapter's unit_roundoff raised {type(exc).__name__}: {exc}")
    reply = Reply(case, status, str(outcome.message), str(outcome.placement), u, output)
    try:
        reply.frames()  # the output must be encodable as a plain numeric array
    except (ProtocolError, TypeError, ValueError) as exc:
        return _error(case, f"adapter's output cannot be sent: {exc}")
    return reply


def _hello(spec: str) -> tuple[object | None, Hello]:
    try:
        adapter = create(split_interpreter(spec)[0])
        info = adapter.info()
        return adapter, Hello(
            str(info.name), str(info.version), bool(info.available), str(info.reason), plain(info.details)
        )
    except Exception as exc:
        return None, Hello(
            spec, "", False, f"adapter failed to start: {exc!r}", {"traceback": traceback.format_exc()}
        )


def serve(channel: Channel, spec: str) -> None:
    """Send the hello, then answer requests until a stop message or the pipe closes."""
    adapter, hello = _hello(spec)
    channel.send([json.dumps(hello.to_wire()).encode()])
    if adapter is None or not hello.available:
        return
    while True:
        request = Request.read(channel)
        if request is None:
            return
        channel.send(answer(adapter, request).frames())


def main(argv: list[str] | None = None) -> int:
    spec, in_fd, out_fd = (argv if argv is not None else sys.argv[1:])[:3]
    channel = Channel(int(in_fd), int(out_fd))
    reaper.become_subreaper()  # what the runtime starts stays ours, double-forked or not
    try:
        serve(channel, spec)
    except (Closed, OSError):  # the parent went away
        return 0
    except ProtocolError as exc:
        print(f"opref worker: {exc}", file=sys.stderr)
        return 3
    finally:
        reaper.end_everything_under_me()
    return 0


if __name__ == "__main__":
    sys.exit(main())
