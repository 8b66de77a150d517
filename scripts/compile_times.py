"""Compile time of the zoo models (BERT-base, 2x512 LSTM): best of N compiles with the object cache warm.

Prints the best wall-clock time and the best CPU time of this process (the second is the steadier on a shared
machine). ``NIMBLE_DEBUG=1`` adds each compile pass's time.

    python scripts/compile_times.py --repeat 3
"""
from __future__ import annotations

import argparse
import time

import nimble
from nimble.models import zoo

MODELS = {"bert_base": zoo.bert_base, "lstm_2x512": zoo.lstm_2x512}


def compile_seconds(build, repeat: int) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds) of ``repeat`` compiles of ``build()``'s module."""
    mod = build()
    nimble.compile(mod)  # warms the on-disk object cache
    wall = cpu = float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        nimble.compile(mod)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    for name in args.models.split(","):
        wall, cpu = compile_seconds(MODELS[name], args.repeat)
        print(f"{name:12s} wall {wall:8.3f} s   cpu {cpu:8.3f} s")


if __name__ == "__main__":
    main()
