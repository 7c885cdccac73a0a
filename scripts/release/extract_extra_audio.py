"""Extract audio files from a fetched public repository snapshot (a bare git directory).

The extra training audio listed in shared/data/README.md arrives as git snapshots; this
copies the files matching a pattern out of HEAD into a folder, never into the repo.

    python scripts/release/extract_extra_audio.py --git /work/.mirror/jimbozhang+speechocean762/repo \
        --pattern 'WAVE/SPEAKER*/*.WAV' --every 3 --out data/extra/speech/speechocean762
"""
from __future__ import annotations

import argparse
import fnmatch
import subprocess
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--git", required=True, help="the snapshot's git directory")
    p.add_argument("--pattern", required=True, help="fnmatch pattern on paths in HEAD")
    p.add_argument("--out", required=True)
    p.add_argument("--every", type=int, default=1, help="keep one file in N (sorted), to subsample")
    p.add_argument("--commit", default="HEAD")
    args = p.parse_args()
    names = subprocess.run(["git", "--git-dir", args.git, "ls-tree", "-r", "--name-only", args.commit],
                           check=True, capture_output=True, text=True).stdout.splitlines()
    chosen = sorted(n for n in names if fnmatch.fnmatch(n, args.pattern))[:: args.every]
    out = Path(args.out)
    for i, name in enumerate(chosen, 1):
        target = out / name.replace("/", "__").replace(" ", "_")
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        blob = subprocess.run(["git", "--git-dir", args.git, "show", f"{args.commit}:{name}"],
                              check=True, capture_output=True).stdout
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(blob)
        tmp.replace(target)
        if i % 500 == 0:
            print(f"{i}/{len(chosen)}", flush=True)
    print(f"{len(chosen)} files in {out}")


if __name__ == "__main__":
    main()
