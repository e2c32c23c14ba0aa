defmodule Snex.DiagnosticsTest do
  # What a user sees when their Python cannot serve: not found, not runnable, a venv whose base
  # Python is gone, too old; and which interpreter a Python log record comes from.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias Snex.Error
  alias Snex.Test.LogForwarder

  setup do
    Process.flag(:trap_exit, true)
    dir = Path.join(System.tmp_dir!(), "snex_diag_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    {:ok, dir: dir}
  end

  describe ":python that cannot be run" do
    test "a name not on PATH" do
      assert {:error, %Error{code: :python_not_found, reason: reason}} =
               Snex.Interpreter.start_link(python: "python3.nope")

      assert reason =~ ~s(python executable "python3.nope" not found on PATH)
    end

    test "a path that does not exist" do
      assert {:error, %Error{code: :python_not_found, reason: reason}} =
               Snex.Interpreter.start_link(python: "/nonexistent/bin/python3")

      assert reason =~ "/nonexistent/bin/python3 does not exist"
    end

    test "a file that is not executable", %{dir: dir} do
      path = Path.join(dir, "python3")
      File.write!(path, "#!/bin/sh\n")
      File.chmod!(path, 0o644)

      assert {:error, %Error{code: :python_not_found, reason: reason}} =
               Snex.Interpreter.start_link(python: path)

      assert reason =~ "#{path} is not executable"
    end

    test "a venv whose base Python is gone names that Python, its version and the fix",
         %{dir: dir} do
      venv = Path.join(dir, ".venv")
      File.mkdir_p!(Path.join(venv, "bin"))

      File.write!(Path.join(venv, "pyvenv.cfg"), """
      home = /opt/gone/bin
      implementation = CPython
      version_info = 3.12.4
      include-system-site-packages = false
      """)

      python = Path.join([venv, "bin", "python"])
      File.ln_s!("/opt/gone/bin/python3.12", python)

      assert {:error, %Error{code: :python_not_found, reason: reason}} =
               Snex.Interpreter.start_link(python: python)

      assert reason =~ "#{python} cannot run"
      assert reason =~ "the virtual environment #{venv} was made with Python 3.12.4"
      assert reason =~ "at /opt/gone/bin/python3.12"
      assert reason =~ "Install Python 3.12.4 at /opt/gone/bin/python3.12"
      assert reason =~ "make the environment again on this machine"
    end
  end

  test "a Python older than 3.10 is refused with an error that says so" do
    # `python -m snex` on a Python that says it is 3.9: the version check comes first.
    # Its message to stderr (tested in python/tests) is dropped to keep the test output clean.
    old_python = fn python, ["-m", "snex"] ->
      {"sh",
       [
         "-c",
         ~s(exec "$0" -c "$1" 2>/dev/null),
         python,
         """
         import runpy, sys
         sys.version_info = (3, 9, 18, "final", 0)
         sys.argv = ["-m"]
         runpy.run_module("snex", run_name="__main__", alter_sys=True)
         """
       ]}
    end

    python = System.find_executable("python3")

    assert {:error, %Error{code: :python_too_old, reason: reason} = error} =
             Snex.Interpreter.start_link(python: python, wrap_exec: old_python)

    assert reason =~ "#{python} is older than Python 3.10, which Snex needs"
    assert Exception.message(error) =~ "python_too_old"
  end

  test "Python log records say which interpreter they come from" do
    {:ok, i} = start_supervised({Snex.Interpreter, label: {:diag, :label}})
    os_pid = Snex.Interpreter.os_pid(i)

    code = """
    import logging
    logger = logging.getLogger("snex_diag")
    logger.propagate = False
    logger.addHandler(snex.LoggingHandler())
    logger.warning("which interpreter?")
    """

    LogForwarder.attach()

    capture_log(fn ->
      {:ok, nil} = Snex.pyeval(i, code)
      [{:warning, _, meta}] = LogForwarder.await([~r/^which interpreter\?$/])
      assert meta[:snex_interpreter] == i
      assert meta[:snex_os_pid] == os_pid
      assert meta[:snex_label] == {:diag, :label}
    end)
  end
end
