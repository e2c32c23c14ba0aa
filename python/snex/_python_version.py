"""The check that the running Python is recent enough for Snex, done before anything else.

This module is imported first by the package, so it must parse and run on any Python: no
annotations, f-strings or newer syntax here.
"""

import sys

#: The oldest Python Snex runs on.
MINIMUM = (3, 10)

#: ``python -m snex`` exits with this status (EX_CONFIG of sysexits.h) on an older Python, so
#: that Elixir can tell this failure from others (``Snex.Interpreter.PythonLookup``).
TOO_OLD_STATUS = 78


def message(version_info):  # type: (tuple[int, ...]) -> str
    """The error for a Python of `version_info` (a ``sys.version_info``)."""
    found = ".".join(str(part) for part in version_info[:3])
    return "Snex needs Python >= %d.%d, but %s is Python %s" % (  # noqa: UP031 - any Python
        MINIMUM[0],
        MINIMUM[1],
        sys.executable or "this Python",
        found,
    )


def check():  # type: () -> None
    """Refuses an old Python: ``python -m snex`` writes why to stderr and exits with
    `TOO_OLD_STATUS`; a plain ``import snex`` raises ``ImportError``."""
    if tuple(sys.version_info[:2]) >= MINIMUM:
        return
    text = message(tuple(sys.version_info[:3]))
    # While ``python -m snex`` imports the package, ``sys.argv[0]`` is "-m".
    if sys.argv[:1] == ["-m"]:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
        raise SystemExit(TOO_OLD_STATUS)
    raise ImportError(text)
