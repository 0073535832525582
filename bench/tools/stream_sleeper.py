#!/usr/bin/env python3
"""stream_sleeper.py — a stream-handler co-process for the footprint bench: answers each task after a delay.

The worker's stream protocol: requests {"id": N, "attempt": A, "task": {...}} one per line on stdin; DELAY
seconds after each arrived it answers {"id": N, "attempt": A, "ok": true, "result": {"slept": DELAY}}, so many
tasks are in flight at once.
"""
import asyncio
import json
import sys


async def main(delay):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def answer(task):
        await asyncio.sleep(delay)
        reply = {"id": task.get("id"), "attempt": task.get("attempt"), "ok": True, "result": {"slept": delay}}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

    pending = set()
    while True:
        line = await reader.readline()
        if not line:
            break
        try:
            task = json.loads(line)
        except ValueError:
            continue
        t = asyncio.ensure_future(answer(task))
        pending.add(t)
        t.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending)


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.5))
