"""Download one file (the official TyDi QA GoldP files) to its place, atomically.

A failed download says what it tried to fetch and why, and leaves nothing behind.
"""
from __future__ import annotations

import argparse
import shutil
import urllib.error
import urllib.request

from workflow_scripts.files import InputError, atomic_path, run_main, setup_logging

log = setup_logging("fetch_file")


def fetch(url: str, out: str, timeout: float = 60) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(out) as tmp, \
                open(tmp, "wb") as handle:
            shutil.copyfileobj(response, handle)
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise InputError(f"could not fetch {url} to {out}: {getattr(err, 'reason', err)}") from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    fetch(args.url, args.out)
    log.info("fetched %s to %s", args.url, args.out)


if __name__ == "__main__":
    run_main(main)
