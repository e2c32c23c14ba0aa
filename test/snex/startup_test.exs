defmodule Snex.StartupTest do
  # What keeps an interpreter's start-up short (see "Start-up" in docs/decisions.md), checked in
  # a fresh interpreter without timing anything: Python loads the `snex` package from bytecode
  # compiled at build time, and what only some requests need is not imported before the first
  # request.
  use ExUnit.Case, async: true

  # Imported on first use only (`snex/__init__.py`, `snex.interface`, `snex.proxy`).
  @lazy_snex_modules ["snex.encoding", "snex.logging_handler", "snex.workers"]

  # Standard modules that only some requests need (calendar values, decimals, the `numbers`
  # ABCs, time zones, encode error hints, worker processes); not imported before the first
  # request unless plain `asyncio` and `pickle` import them on this Python.
  @lazy_stdlib_modules ["datetime", "decimal", "numbers", "zoneinfo", "tempfile", "fractions"]

  setup do
    {:ok, interpreter} = start_supervised(Snex.Interpreter)
    %{interpreter: interpreter}
  end

  test "the modules only some requests need are not imported before the first request",
       %{interpreter: interpreter} do
    {:ok, loaded} = Snex.pyeval(interpreter, "import sys\nreturn sorted(sys.modules)")

    {floor, 0} =
      System.cmd(System.find_executable("python3"), [
        "-c",
        "import sys, asyncio, pickle; print(' '.join(sys.modules))"
      ])

    floor = String.split(floor)

    assert "snex.runner" in loaded
    assert Enum.filter(@lazy_snex_modules, &(&1 in loaded)) == []

    assert Enum.filter(@lazy_stdlib_modules, &(&1 in loaded and &1 not in floor)) == []
  end

  test "what is imported on first use works", %{interpreter: interpreter} do
    assert {:ok, [true, true, true, "bytes"]} =
             Snex.pyeval(interpreter, """
             from snex import serve_forever, EncodingOpt
             import logging
             return [
                 issubclass(snex.LoggingHandler, logging.Handler),
                 callable(serve_forever),
                 "LoggingHandler" in dir(snex),
                 str(EncodingOpt.BinaryAs.BYTES),
             ]
             """)
  end

  test "the snex package is loaded from bytecode compiled for this Python",
       %{interpreter: interpreter} do
    # A pyc that Python uses as it is: checked against the hash of its source (valid
    # whatever the file times, as after a copy into a release).
    assert {:ok, %{"checked" => checked, "missing" => []}} =
             Snex.pyeval(interpreter, """
             import importlib.util, sys
             checked, missing = [], []
             for name, module in sorted(sys.modules.items()):
                 if name != "snex" and not name.startswith("snex."):
                     continue
                 source = module.__spec__.origin
                 try:
                     with open(importlib.util.cache_from_source(source), "rb") as f:
                         pyc = f.read(16)
                 except OSError:
                     missing.append(name)
                     continue
                 with open(source, "rb") as f:
                     digest = importlib.util.source_hash(f.read())
                 ok = (
                     pyc[:4] == importlib.util.MAGIC_NUMBER
                     and int.from_bytes(pyc[4:8], "little") == 0b11
                     and pyc[8:16] == digest
                 )
                 (checked if ok else missing).append(name)
             return {"checked": checked, "missing": missing}
             """)

    assert "snex.runner" in checked
  end
end
