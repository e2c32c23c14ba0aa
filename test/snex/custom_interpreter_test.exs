defmodule Snex.CustomInterpreterTest do
  # `use Snex.Interpreter` with Python projects synced by uv (SPEC section 7). The two modules
  # used here live in test/support/interpreters.ex, so they are compiled (and their venvs
  # synced) by `mix compile`; modules compiled inside tests check the compile errors and
  # recompilation. Not async: some tests change SNEX_UV.
  use ExUnit.Case, async: false

  alias Snex.Test.{NumpyInterpreter, ProjectInterpreter}

  @build_snex Path.join(Mix.Project.build_path(), "snex")

  describe "pyproject_toml" do
    test "numpy from the module's venv computes with data from Elixir" do
      {:ok, i} = start_supervised({NumpyInterpreter, init_script: "import numpy as np"})

      assert {:ok, [14.0, version, prefix, venv]} =
               Snex.pyeval(
                 i,
                 """
                 import os, sys
                 v = np.array(xs)
                 return [float(v @ v), np.__version__, sys.prefix, os.environ["VIRTUAL_ENV"]]
                 """,
                 %{"xs" => [1, 2, 3]}
               )

      assert Version.match?(version, ">= 2.0.0")
      assert prefix == Path.join([@build_snex, "Snex.Test.NumpyInterpreter", ".venv"])
      assert venv == prefix
    end

    test "generated child_spec, label, os_pid and stop" do
      assert %{id: NumpyInterpreter, start: {NumpyInterpreter, :start_link, [[]]}} =
               NumpyInterpreter.child_spec([])

      assert %{id: :other, restart: :temporary} =
               NumpyInterpreter.child_spec(id: :other, restart: :temporary)

      {:ok, i} = start_supervised(NumpyInterpreter)
      assert label(i) == NumpyInterpreter
      assert {:ok, pid} = Snex.pyeval(i, "import os\nreturn os.getpid()")
      assert NumpyInterpreter.os_pid(i) == pid

      ref = Process.monitor(i)
      assert :ok = NumpyInterpreter.stop(i)
      assert_receive {:DOWN, ^ref, :process, ^i, :normal}
    end

    test "given options win over the filled-in ones" do
      {:ok, i} =
        start_supervised(
          {NumpyInterpreter,
           python: System.find_executable("python3"),
           label: :mine,
           environment: %{"VIRTUAL_ENV" => "/nowhere"}}
        )

      assert label(i) == :mine

      assert {:ok, [prefix, "/nowhere"]} =
               Snex.pyeval(i, "import os, sys\nreturn [sys.prefix, os.environ['VIRTUAL_ENV']]")

      refute prefix =~ "Snex.Test.NumpyInterpreter"
    end

    test "bad options raise ArgumentError as for Snex.Interpreter" do
      assert_raise ArgumentError, ~r/environment/, fn ->
        NumpyInterpreter.start_link(environment: [{"A", "B"}])
      end

      assert_raise ArgumentError, ~r/sync_start/, fn ->
        NumpyInterpreter.start_link(sync_start: 1)
      end
    end
  end

  describe "project_path" do
    test "runs in the project directory and imports its modules; start_link calls super" do
      {:ok, i} = start_supervised(ProjectInterpreter)

      # `greeting` was imported by the overridden start_link/1's init script.
      assert {:ok, ["Hello, Elixir!", cwd, prefix]} =
               Snex.pyeval(i, """
               import os, sys
               return [greeting.greet("Elixir"), os.getcwd(), sys.prefix]
               """)

      assert cwd == Path.expand("test/fixtures/py_project")
      assert prefix == Path.join([@build_snex, "Snex.Test.ProjectInterpreter", ".venv"])
    end
  end

  describe "compile errors" do
    test "bad options" do
      assert_compile_error(~r/either :pyproject_toml or :project_path/, """
      use Snex.Interpreter, pyproject_toml: "", project_path: "."
      """)

      assert_compile_error(~r/unknown options for use Snex.Interpreter: \[:pyproject\]/, """
      use Snex.Interpreter, pyproject: ""
      """)

      assert_compile_error(~r/must be strings/, """
      use Snex.Interpreter, project_path: :here
      """)

      assert_compile_error(~r/project_path "test" has no pyproject.toml/, """
      use Snex.Interpreter, project_path: "test"
      """)
    end

    test "uv missing" do
      System.put_env("SNEX_UV", "/nonexistent/uv")
      on_exit(fn -> System.delete_env("SNEX_UV") end)

      assert_compile_error(~r/uv is needed to build the Python environment of .* not found/, """
      use Snex.Interpreter, pyproject_toml: "[project]\\nname = \\"x\\"\\nversion = \\"0\\""
      """)
    end

    test "a failed sync shows uv's message" do
      assert_compile_error(~r/uv sync failed \(exit status \d+\).*\n.*2\.7/s, """
      use Snex.Interpreter, pyproject_toml: \"""
      [project]
      name = "too-old"
      version = "0.0.0"
      requires-python = "==2.7.*"
      \"""
      """)
    end
  end

  describe "recompilation" do
    setup do
      dir = Path.join(System.tmp_dir!(), "snex_project_#{System.unique_integer([:positive])}")
      File.mkdir_p!(dir)
      File.cp!("test/fixtures/py_project/pyproject.toml", Path.join(dir, "pyproject.toml"))
      on_exit(fn -> File.rm_rf!(dir) end)
      {:ok, dir: dir}
    end

    test "when the project changes or the venv is gone", %{dir: dir} do
      module = compile!("use Snex.Interpreter, project_path: #{inspect(dir)}")
      project = module.__snex_interpreter__()
      # uv wrote the lock, as `uv sync` does.
      assert File.exists?(Path.join(dir, "uv.lock"))
      refute module.__mix_recompile__?()

      # Compiling again without changes does not run uv (the venv is left as it is): a sync
      # would give the venv's config a new modification time.
      cfg = Path.join(project.build_dir, ".venv/pyvenv.cfg")
      long_ago = {{2000, 1, 1}, {0, 0, 0}}
      File.touch!(cfg, long_ago)
      module = compile!("use Snex.Interpreter, project_path: #{inspect(dir)}", module)
      assert File.stat!(cfg).mtime == long_ago

      pyproject = Path.join(dir, "pyproject.toml")
      File.write!(pyproject, String.replace(File.read!(pyproject), "0.1.0", "0.2.0"))
      assert module.__mix_recompile__?()

      # The lock no longer matches the project: --locked fails the compile.
      assert_compile_error(
        ~r/uv sync failed/,
        "use Snex.Interpreter, project_path: #{inspect(dir)}"
      )

      File.rm!(Path.join(dir, "uv.lock"))
      module = compile!("use Snex.Interpreter, project_path: #{inspect(dir)}", module)
      refute module.__mix_recompile__?()

      File.rm_rf!(Path.join(project.build_dir, ".venv"))
      assert module.__mix_recompile__?()
    end

    test "starting without the venv, or with its base Python gone, says what to do", %{dir: dir} do
      Process.flag(:trap_exit, true)
      module = compile!("use Snex.Interpreter, project_path: #{inspect(dir)}")
      %{build_dir: build_dir, python_version: version} = module.__snex_interpreter__()
      venv = Path.join(build_dir, ".venv")
      assert version =~ ~r/^3\.\d+\.\d+$/

      File.rm!(Path.join(venv, "bin/python"))
      File.ln_s!("/opt/snex-gone/python3", Path.join(venv, "bin/python"))

      assert {:error, %Snex.Error{code: :python_not_found, reason: reason}} = module.start_link()
      assert reason =~ "the Python environment of #{inspect(module)} cannot run"
      assert reason =~ "was made with Python #{version} at /opt/snex-gone/python3"
      assert reason =~ "compiling #{inspect(module)} again (`mix compile`) makes it with uv"

      File.rm_rf!(venv)
      assert {:error, %Snex.Error{code: :python_not_found, reason: reason}} = module.start_link()
      assert reason =~ "the Python environment of #{inspect(module)} is missing (#{venv})"

      assert reason =~
               "It needs Python #{version |> String.split(".") |> Enum.take(2) |> Enum.join(".")}"
    end
  end

  defp compile!(body, module \\ unique_module()) do
    on_exit(fn -> cleanup(module) end)
    :code.purge(module)
    :code.delete(module)

    Code.compile_string("""
    defmodule #{inspect(module)} do
      #{body}
    end
    """)

    module
  end

  defp assert_compile_error(message, body) do
    module = unique_module()
    on_exit(fn -> cleanup(module) end)

    error =
      assert_raise CompileError, fn ->
        Code.compile_string("""
        defmodule #{inspect(module)} do
          #{body}
        end
        """)
      end

    assert Exception.message(error) =~ message
  end

  defp unique_module, do: Module.concat(Snex.Test, "Custom#{System.unique_integer([:positive])}")

  defp cleanup(module) do
    File.rm_rf!(Path.join(@build_snex, inspect(module)))
  end

  defp label(pid) do
    if function_exported?(:proc_lib, :get_label, 1),
      do: apply(:proc_lib, :get_label, [pid]),
      else: Process.info(pid, :dictionary) |> elem(1) |> Keyword.get(:"$process_label")
  end
end
