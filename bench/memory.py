"""Resident memory of the balancer and an agent after 100 and after 1,000 requests (issue 8).

A real cluster (one agent, 2 slots, SmolLM2); requests of every front end take turns: raw
prompts over REST, conversations over the inference socket, and OpenAI chat completions, a few
tokens each, 4 in flight at once. RSS is read from /proc after the first 100 and after all
1,000. Target: the RSS after 1,000 is within 10% of the RSS after 100, for both processes (the
baseline is the same process after 100 requests).
Run: ``python -m bench.memory`` (writes bench/results/memory.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json

import httpx
from websockets.asyncio.client import connect

from bench.common import Row, cluster, publish, rss_mib
from tests.support.cluster import Cluster, deterministic_state

TARGET_GROWTH = 0.10
IN_FLIGHT = 4
CONVERSATION = {
    "add_generation_prompt": True,
    "conversation_history": [{"role": "user", "content": "Say hello."}],
    "enable_thinking": False,
    "max_tokens": 4,
}


async def one_request(client: httpx.AsyncClient, made: Cluster, index: int) -> None:
    kind = index % 3
    if kind == 0:
        url = f"{made.b.inference_url}/api/v1/continue_from_raw_prompt"
        response = await client.post(url, json={"raw_prompt": "Hello,", "max_tokens": 4})
        assert '"Done"' in response.text.splitlines()[-1], response.text
    elif kind == 1:
        async with connect(made.b.inference_socket_url) as socket:
            request = {"ContinueFromConversationHistory": CONVERSATION}
            await socket.send(json.dumps({"Request": {"id": f"m{index}", "request": request}}))
            while '"Done"' not in (frame := str(await socket.recv())):
                assert '"Response"' in frame, frame
    else:
        body = {"model": "m", "messages": CONVERSATION["conversation_history"], "max_tokens": 4}
        response = await client.post(f"{made.b.openai_url}/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text


async def run_requests(made: Cluster, start: int, count: int) -> None:
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def bounded(index: int) -> None:
        async with slots:
            await one_request(client, made, index)

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(bounded(i) for i in range(start, start + count)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--first", type=int, default=100)
    parser.add_argument("--total", type=int, default=1000)
    args = parser.parse_args(argv)

    with cluster() as made:
        made.start(openai=True, agents=1, slots=2, state=deterministic_state())
        pids = {"balancer": made.b.pid, "agent": made.agents[0].pid}
        asyncio.run(run_requests(made, 0, args.first))
        after_first = {name: rss_mib(pid) for name, pid in pids.items()}
        asyncio.run(run_requests(made, args.first, args.total - args.first))
        after_total = {name: rss_mib(pid) for name, pid in pids.items()}

    rows = []
    for name in pids:
        growth = after_total[name] / after_first[name] - 1
        rows.append(
            Row(
                f"{name} RSS after {args.total} (baseline: after {args.first})",
                after_total[name],
                "MiB",
                after_first[name],
                f"within {TARGET_GROWTH:.0%}",
                abs(growth) <= TARGET_GROWTH,
            )
        )
        rows.append(Row(f"{name} RSS growth", growth * 100, "%"))
    publish(
        "memory",
        "memory: RSS after requests (1 agent x 2 slots, SmolLM2)",
        {
            "settings": {"first": args.first, "total": args.total, "in_flight": IN_FLIGHT},
            "rss_mib": {"after_first": after_first, "after_total": after_total},
        },
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
