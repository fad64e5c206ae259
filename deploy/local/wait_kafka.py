"""Waits until a Kafka broker answers a real metadata request. Usage: wait_kafka.py HOST:PORT SECONDS"""
import asyncio
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient


async def answers(bootstrap: str) -> bool:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await client.start()
        await client.list_topics()
        return True
    except Exception:
        return False
    finally:
        try:
            await client.close()
        except Exception:
            pass


def main() -> int:
    bootstrap, seconds = sys.argv[1], float(sys.argv[2])
    deadline = time.monotonic() + seconds
    while True:
        if asyncio.run(answers(bootstrap)):
            return 0
        if time.monotonic() > deadline:
            return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
