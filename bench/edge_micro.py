"""CPU per call of three small pieces of every change (issue 11, branch `i11-edge`), in one
checkout or two side by side:

* ``check_intent``: the audit log's check of an intent as the gateway makes it (roles,
  system, purpose and action the vocabulary's StrEnums);
* ``answer``: the edge's count and access line of one answered keycom PATCH
  (``service.edge._count_and_log``: its request metrics and its line, written to
  ``/dev/null`` by the gateway's own log handler, batched as when serving);
* ``canonical``: the canonical ASCII JSON of an audit entry body (``common.canonical``,
  as the audit chain encodes it: StrEnums, a float, nested values).

    python -m bench.edge_micro [--against CHECKOUT] [--number 20000] [--repeat 5]

Each checkout is measured in a process of its own (its own ``.venv`` when it has one),
the best of ``--repeat`` runs of ``--number`` calls in CPU time (``time.process_time``).
With ``--against``, that checkout (A) and this one (B) alternate ``--rounds`` times.
Synthetic values only. Not a test assertion (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

PIECES = ("check_intent", "answer", "canonical")

_RUN = textwrap.dedent("""
    import asyncio, json, os, shutil, sys, tempfile, time, timeit
    from pathlib import Path
    number, repeat = int(sys.argv[1]), int(sys.argv[2])

    def best(call):
        runs = timeit.repeat(call, number=number, repeat=repeat, timer=time.process_time)
        return 1e6 * min(runs) / number

    from audit import Intent
    from audit.entries import check_intent
    from common.canonical import encoder
    from common.vocabulary import Action, AuditOutcome, Phase, Purpose, Role, System

    intent = Intent(
        actor="editor-1", roles=(Role.EDITOR, Role.PRIVACY_OFFICER), system=System.KEYCOM,
        customer_id="42", purpose=Purpose.CUSTOMER_SERVICE, request_id="r" * 32,
        action=Action.UPDATE, changed=("Email", "Phone"), before={"Phone": "1"},
        after={"Phone": "2"}, protected={"Email": "personal"}, policy_version="sha256:ab",
        retention_days=30,
    )
    body = {
        "v": 2, "audit_id": "0192f0c4-7d2a-7000-8000-000000000001",
        "time": "2026-11-02T10:00:00.000000Z", "actor": "editor-1",
        "roles": [Role.EDITOR, Role.PRIVACY_OFFICER], "system": System.KEYCOM,
        "customer_id": "42", "purpose": Purpose.CUSTOMER_SERVICE, "request_id": "r" * 32,
        "action": Action.UPDATE, "phase": Phase.OUTCOME, "outcome": AuditOutcome.APPLIED,
        "problem_code": None, "upstream_status": 200, "upstream_latency_ms": 1.25,
        "intent_id": None, "changed": ["Email", "Phone"], "before": {"Phone": "1"},
        "after": {"Phone": "2", "Tags": [1, 2.5, True, None]}, "policy_version": "sha256:ab",
        "reason": None, "target_id": None, "key_id": "k1",
        "sealed": {"before": {"Email": "QUJD"}, "after": {"Email": "REVG"}},
    }
    encode = encoder(ascii_only=True)

    async def main():
        from aiohttp import web
        from aiohttp.test_utils import make_mocked_request
        from prometheus_client import CollectorRegistry
        from service.demo_settings import demo_settings
        from service.edge import _count_and_log
        from service.keys import METRICS_KEY, REQUEST_ID_KEY, SETTINGS_KEY
        from service.logs import configure_logging
        from service.metrics import Metrics
        from service.registry import SYSTEMS

        route = "/v1/systems/{system}/customers/{customer_id}"
        state = tempfile.mkdtemp(prefix="edge-micro-")
        settings = demo_settings(
            port=0, state_dir=Path(state),
            upstream_urls={s: "http://127.0.0.1:9" for s in SYSTEMS},
            audit_url="sqlite+aiosqlite:///unused.db", master_key=b"m" * 32,
            signing_key=b"s" * 32,
        )
        app = web.Application()
        app.router.add_patch(route, lambda request: None)
        app[SETTINGS_KEY] = settings
        metrics = Metrics(CollectorRegistry(), systems=settings.upstreams)
        metrics.init_routes([route])
        app[METRICS_KEY] = metrics
        request = make_mocked_request("PATCH", "/v1/systems/keycom/customers/42", app=app)
        match = await app.router.resolve(request)
        match.add_app(app)
        request._match_info = match
        request[REQUEST_ID_KEY] = "r" * 32
        response = web.Response(status=200)
        shutil.rmtree(state, ignore_errors=True)
        configure_logging("INFO")
        real, sys.stderr = sys.stderr, open(os.devnull, "w")  # the access lines
        try:
            return best(lambda: _count_and_log(request, response, 0.0012, False))
        finally:
            sys.stderr = real

    out = {
        "check_intent": best(lambda: check_intent(intent)),
        "answer": asyncio.run(main()),
        "canonical": best(lambda: encode(body)),
    }
    print(json.dumps(out))
""")


def measure(checkout: Path, number: int, repeat: int) -> dict[str, float]:
    """µs of CPU per call of each piece in ``checkout``, in a process of its own."""
    venv = checkout / ".venv" / "bin" / "python"
    python = str(venv) if venv.exists() else sys.executable
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [python, "-c", _RUN, str(number), str(repeat)],
        cwd=checkout, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, help="checkout A, measured beside this one")
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parents[1]
    sides = [("A", args.against.resolve()), ("B", here)] if args.against else [("B", here)]
    found: dict[str, list[dict[str, float]]] = {name: [] for name, _ in sides}
    for _ in range(args.rounds if args.against else 1):
        for name, checkout in sides:
            found[name].append(measure(checkout, args.number, args.repeat))
    for name, checkout in sides:
        best = {piece: min(run[piece] for run in found[name]) for piece in PIECES}
        shown = ", ".join(f"{piece} {best[piece]:.2f} µs" for piece in PIECES)
        print(f"{name} {checkout}: {shown}")
    if args.against:
        a, b = (
            {p: min(r[p] for r in found[n]) for p in PIECES} for n in ("A", "B")
        )  # fmt: skip
        print("B/A: " + ", ".join(f"{p} {b[p] / a[p]:.3f}" for p in PIECES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
