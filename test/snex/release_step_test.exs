defmodule Snex.ReleaseStepTest do
  # Snex.Release.after_assemble/1 on a release directory of its own, without building a whole
  # release (test/snex/release_test.exs does that). Not async: it sets Mix's shell.
  use ExUnit.Case, async: false

  @build_snex Path.join(Mix.Project.build_path(), "snex")

  setup do
    root = Path.join(System.tmp_dir!(), "snex_step_#{System.unique_integer([:positive])}")
    project = Path.join(root, "py")
    File.mkdir_p!(project)
    File.cp!("test/fixtures/py_project/pyproject.toml", Path.join(project, "pyproject.toml"))
    File.cp!("test/fixtures/py_project/greeting.py", Path.join(project, "greeting.py"))

    module = Module.concat(Snex.Test, "Step#{System.unique_integer([:positive])}")
    shell = Mix.shell()
    Mix.shell(Mix.Shell.Process)

    Code.compile_string("""
    defmodule #{inspect(module)} do
      use Snex.Interpreter, project_path: #{inspect(project)}
    end
    """)

    on_exit(fn ->
      Mix.shell(shell)
      :code.purge(module)
      :code.delete(module)
      File.rm_rf!(Path.join(@build_snex, inspect(module)))
      File.rm_rf!(root)
    end)

    release =
      struct(Mix.Release,
        path: Path.join(root, "rel"),
        applications: %{snex: [modules: [module], vsn: ~c"0.1.0"]}
      )

    {:ok, module: module, release: release, root: root}
  end

  test "copies the venv and the project, checks the copy runs, and says which Python it needs",
       %{module: module, release: release} do
    assert Snex.Release.after_assemble(release) == release

    dest = Path.join(release.path, "lib/snex-0.1.0/priv/snex/#{inspect(module)}")
    assert File.regular?(Path.join(dest, ".venv/pyvenv.cfg"))
    assert File.regular?(Path.join(dest, "project/greeting.py"))

    assert_received {:mix_shell, :info, ["* snex copied" <> _ = message]}
    assert message =~ "copied the Python environment of #{inspect(module)} (no packages)"

    assert message =~
             ~r/and checked it runs; where the release runs it needs Python 3\.\d+\.\d+ at \//
  end

  test "a copy whose Python does not run fails the step", %{module: module, release: release} do
    # A venv whose python is a relative link to the base Python: right where it was made,
    # dangling once copied elsewhere.
    %{build_dir: build_dir} = module.__snex_interpreter__()
    link = Path.join(build_dir, ".venv/bin/python")
    {:ok, target} = File.read_link(link)
    base = Path.expand(target, Path.dirname(link))
    depth = link |> Path.dirname() |> Path.split() |> length()
    relative = String.duplicate("../", depth - 1) <> String.trim_leading(base, "/")
    File.rm!(link)
    File.ln_s!(relative, link)
    assert File.exists?(link)

    error = assert_raise Mix.Error, fn -> Snex.Release.after_assemble(release) end
    assert error.message =~ "the copy of the Python environment of #{inspect(module)}"
    assert error.message =~ "does not run"
  end

  test "a module whose venv is gone fails the step", %{module: module, release: release} do
    File.rm_rf!(Path.join([@build_snex, inspect(module), ".venv"]))
    error = assert_raise Mix.Error, fn -> Snex.Release.after_assemble(release) end
    assert error.message =~ "the Python environment of #{inspect(module)} is missing"
  end
end
