"""Compile time of the zoo models (BERT-base, 2x512 LSTM): best of N compiles with the object cache warm.

    python scripts/compile_times.py --repeat 3
"""
from __future__ import annotations

import argparse
import time

import nimble
from nimble.models import zoo

MODELS = {"bert_base": zoo.bert_base, "lstm_2x512": zoo.lstm_2x512}


def compile_seconds(build, repeat: int) -> float:
    mod = build()
    nimble.compile(mod)  # warms the on-disk object cache
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        nimble.compile(mod)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    for name in args.models.split(","):
        print(f"{name:12s} {compile_seconds(MODELS[name], args.repeat):8.3f} s")


if __name__ == "__main__":
    main()
