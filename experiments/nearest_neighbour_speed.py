"""PRDC's exact nearest-neighbour search: the two-pass search against a one-pass scan.

    python experiments/nearest_neighbour_speed.py --keys=20000,200000 --repeats=2

Shapes are PRDC's on Brax hopper: 5 seeds vmapped, a batch of 256 queries per seed, keys of
dimension 11 + 3 (state and action), ``--keys`` dataset transitions. The peer is the
one-pass search rlzoo used before (distances per chunk of 4096 keys, then a running
argmin), written out below; ``rlzoo.data.sampling.nearest_neighbour`` is the two-pass search
(matmul-min over chunks, then the argmin inside the best chunk only). Both are timed in
this process, each a best of 10 calls after compiling; every round of ``--repeats`` times
them again and gives its own ratio. The search is a matmul in disguise, so it is also given
in GFLOP/s (2 x queries x keys x (dim + 1) per call) next to a jitted 256x256 matmul.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from common import record
from diffusion_offline_speed import matmul_gflops

from rlzoo.data.sampling import nearest_neighbour


def one_pass_search(queries: jax.Array, keys: jax.Array, chunk_size: int = 4096):
    """The peer: per chunk the full squared distance, its argmin, and a running best."""
    n, d = keys.shape
    chunk_size = min(chunk_size, n)
    num_chunks = -(-n // chunk_size)
    padded = jnp.zeros((num_chunks * chunk_size, d), keys.dtype).at[:n].set(keys)
    valid = jnp.arange(num_chunks * chunk_size) < n
    query_norms = jnp.sum(jnp.square(queries), axis=1, keepdims=True)

    def scan_chunk(carry, chunk):
        best_distance, best_index = carry
        block, block_valid, offset = chunk
        distance = query_norms - 2.0 * queries @ block.T + jnp.sum(jnp.square(block), axis=1)
        distance = jnp.where(block_valid, distance, jnp.inf)
        index = jnp.argmin(distance, axis=1)
        value = jnp.min(distance, axis=1)
        better = value < best_distance
        return (
            jnp.where(better, value, best_distance),
            jnp.where(better, index + offset, best_index),
        ), None

    chunks = (
        padded.reshape((num_chunks, chunk_size, d)),
        valid.reshape((num_chunks, chunk_size)),
        jnp.arange(num_chunks) * chunk_size,
    )
    start = (jnp.full((queries.shape[0],), jnp.inf), jnp.zeros((queries.shape[0],), jnp.int32))
    (distance, index), _ = jax.lax.scan(scan_chunk, start, chunks)
    return index, jnp.maximum(distance, 0.0)


def best_time(fn, *args, calls: int = 10) -> tuple[float, tuple]:
    out = jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", default="20000,200000")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=14)
    parser.add_argument("--chunk", type=int, default=256, help="chunk of the two-pass search")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    gflops = matmul_gflops(256)
    print(f"device: {jax.devices()[0].device_kind}; matmul 256x256: {gflops:.0f} GFLOP/s")
    rows = []
    for n in (int(k) for k in args.keys.split(",")):
        rng = np.random.default_rng(n)
        keys = jnp.asarray(rng.normal(size=(n, args.dim)), jnp.float32)
        queries = jnp.asarray(rng.normal(size=(args.seeds, args.batch, args.dim)), jnp.float32)
        peer = jax.jit(jax.vmap(one_pass_search, in_axes=(0, None)))
        ours = jax.jit(jax.vmap(nearest_neighbour, in_axes=(0, None, None)), static_argnums=2)
        flop = 2.0 * args.seeds * args.batch * n * (args.dim + 1)
        for round_ in range(args.repeats):
            peer_s, (peer_index, peer_distance) = best_time(peer, queries, keys)
            ours_s, (index, distance) = best_time(ours, queries, keys, args.chunk)
            row = {
                "keys": n,
                "round": round_,
                "one_pass_ms": peer_s * 1e3,
                "two_pass_ms": ours_s * 1e3,
                "speedup": peer_s / ours_s,
                "two_pass_gflops": flop / ours_s / 1e9,
                "one_pass_gflops": flop / peer_s / 1e9,
                "same_index": float(jnp.mean(index == peer_index)),
                "max_distance_difference": float(jnp.max(jnp.abs(distance - peer_distance))),
            }
            print(row, flush=True)
            rows.append(row)
    lines = [
        f"{args.seeds} seeds x {args.batch} queries of dimension {args.dim} against N keys; "
        f"two-pass chunk {args.chunk}, one-pass chunk 4096; matmul probe {gflops:.0f} GFLOP/s.",
        "",
        "| keys N | round | one-pass (ms) | two-pass (ms) | speed-up | two-pass GFLOP/s | "
        "share of the probe | same index |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['keys']} | {r['round'] + 1} | {r['one_pass_ms']:.1f} | {r['two_pass_ms']:.1f} "
            f"| {r['speedup']:.1f}x | {r['two_pass_gflops']:.0f} | "
            f"{r['two_pass_gflops'] / gflops:.0%} | {r['same_index']:.2%} |"
        )
    record(
        "nearest_neighbour_speed",
        {
            "args": vars(args),
            "matmul_256_gflops": gflops,
            "results": rows,
            "table": "\n".join(lines),
        },
    )


if __name__ == "__main__":
    main()
