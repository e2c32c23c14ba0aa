"""``python -m snex``: serve the BEAM on fds 3 and 4."""

from snex.runner import main

# multiprocessing's spawn start method imports this module again as ``__mp_main__`` in its
# children: only the interpreter itself serves the BEAM.
if __name__ == "__main__":
    main()
