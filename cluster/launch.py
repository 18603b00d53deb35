"""Entry script for `ray submit cluster/<provider>.yaml cluster/launch.py -- <autohas.tune options>`.

`ray submit` copies this file to the head node and runs it there with the head's python (the
cluster YAML's setup commands install autohas into it). It runs the same command line as
`python -m autohas.tune`, connected to the cluster running on that head unless `--address`
or $RAY_ADDRESS names one.
"""
import os
import sys

from autohas.tune import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    named = any(a == "--address" or a.startswith("--address=") for a in argv)
    if not named and not os.environ.get("RAY_ADDRESS"):
        argv += ["--address", "auto"]  # the cluster `ray start --head` started on this machine
    sys.exit(main(argv))
