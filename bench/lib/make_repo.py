#!/usr/bin/env python3
"""Writes the benchmark work tree: the same shape as benches/checkout.rs builds.

    make_repo.py DIR

5,000 entries in 100 directories: 4,990 text-like files (most 1-12 KB, 20 of 1 MiB,
every 50th executable) and 10 symlinks; about 52 MB. Deterministic (fixed seed).
"""
import os
import random
import sys

FILES = 5000
DIRECTORIES = 100
LARGE_FILES = 20
SYMLINKS = 10
WORDS = ["fn", "let", "match", "deploy", "release", "commit", "tree", "blob", "return", "self",
         "struct", "impl", "pub", "use", "if", "else", "for", "while", "Ok", "Err", "path"]


def main(work):
    rng = random.Random(0x9E3779B97F4A7C15)
    # A pool of tokens with the generator's proportions (newline after 1 in 9 words,
    # a number after 1 in 5), sampled with random.choices: fast, and it compresses
    # like source code does.
    pool = []
    for _ in range(20000):
        r = rng.getrandbits(64)
        t = WORDS[r % len(WORDS)] + ("\n" if r % 9 == 0 else " ")
        if r % 5 == 0:
            t += f"{r % 10000} "
        pool.append(t)
    avg = sum(map(len, pool)) / len(pool)
    dirs = [os.path.join(work, f"d{i}") if i < 10 else os.path.join(work, f"d{i % 10}", f"sub{i}")
            for i in range(DIRECTORIES)]
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    total = 0
    for i in range(FILES - SYMLINKS):
        size = 1 << 20 if i % (FILES // LARGE_FILES) == 7 else 1024 + rng.randrange(11 * 1024)
        text = "".join(rng.choices(pool, k=int(size / avg) + 16))[:size]
        path = os.path.join(dirs[i % DIRECTORIES], f"file{i}.txt")
        with open(path, "w") as f:
            f.write(text)
        if i % 50 == 0:
            os.chmod(path, 0o755)
        total += len(text)
    for i in range(SYMLINKS):
        os.symlink(f"file{i}.txt", os.path.join(dirs[i], f"link{i}"))
    print(f"{FILES} entries, {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1])
