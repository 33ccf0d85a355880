"""HTTP fuzz: plain-random requests against a real endpoint (with and without a token), each
judged by the oracle in bench/support/http_oracle.py; the server must still answer afterwards."""

from __future__ import annotations

import random
import socket

from bench.reliability.result import Result
from bench.support.http_fuzz import healthy, http_fuzz_cases, send_case
from bench.support.http_oracle import check_response
from bench.support.server import ServerThread
from bench.support.settings import tune


def http_fuzz(settings, n: int = 300, seed: int = 0) -> Result:
    r = Result("HTTP fuzz")
    rng = random.Random(seed)
    token = "s3cret-token"
    statuses: dict[int | None, int] = {}
    for tok in ("", token):
        s = tune(settings, server={"token": tok, "max_body_kb": 64})
        with ServerThread(s, preload=False) as server:
            for case in http_fuzz_cases(rng, n // 2, tok):
                r.tried += 1
                r.faults += 1
                try:
                    status, raw = send_case(server.port, case)
                except socket.timeout:
                    r.crashes += 1
                    r.fail(f"timeout (hang) on {case['method']} {case['path']}")
                    continue
                except OSError as e:
                    r.crashes += 1
                    r.fail(f"{e} on {case['method']} {case['path']}")
                    continue
                statuses[status] = statuses.get(status, 0) + 1
                problem = check_response(case, status, raw, tok, 64 * 1024)
                if problem:
                    r.fail(problem)
                else:
                    r.handled += 1
            if not healthy(server.port, tok):
                r.crashes += 1
                r.fail("the server stopped answering")
    r.notes["statuses"] = {str(k): v for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))}
    return r
