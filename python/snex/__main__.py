"""``python -m snex``: serve the BEAM on fds 3 and 4."""

from snex.runner import main

main()
