defmodule Snex.ReleaseTest do
  # Builds a real release of a small app (test/fixtures/release_app) with a numpy interpreter and
  # a project_path interpreter, moves it away from its build, deletes the build and runs it with
  # uv hidden from PATH.
  use ExUnit.Case, async: false

  @moduletag timeout: 600_000

  @fixtures Path.expand("../fixtures", __DIR__)
  @snex_root Path.expand("../..", __DIR__)

  setup do
    root = Path.join(System.tmp_dir!(), "snex_release_#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(root) end)
    {:ok, root: root}
  end

  test "a release runs its interpreters without uv, from anywhere", %{root: root} do
    app = Path.join(root, "build/release_app")
    File.mkdir_p!(app)
    File.cp_r!(Path.join(@fixtures, "release_app"), app)
    File.cp_r!(Path.join(@fixtures, "py_project"), Path.join(app, "py"))

    {output, status} =
      System.cmd("mix", ["release", "--overwrite"],
        cd: app,
        env: [
          {"MIX_ENV", "prod"},
          {"SNEX_PATH", @snex_root},
          # The NIF's cargo build is shared with the suite's (cargo locks it).
          {"CARGO_TARGET_DIR", Mix.Tasks.Compile.SnexNative.default_target_dir()}
        ],
        stderr_to_stdout: true
      )

    assert status == 0, output

    # Only the release's interpreters are copied, each into its own application's priv dir.
    built = Path.join(app, "_build/prod/rel/release_app")
    [app_dir] = Path.wildcard(Path.join(built, "lib/release_app-*"))

    assert File.ls!(Path.join(app_dir, "priv/snex")) |> Enum.sort() ==
             ["ReleaseApp.NumpyInterpreter", "ReleaseApp.ProjectInterpreter"]

    assert Path.wildcard(Path.join(built, "lib/snex-*/priv/snex")) == []

    # The step verified the copies and says which Python the release needs.
    venv = Path.join(app_dir, "priv/snex/ReleaseApp.NumpyInterpreter/.venv")
    %{"version_info" => version} = pyvenv_cfg(venv)
    assert output =~ "copied the Python environment of ReleaseApp.NumpyInterpreter ("
    assert output =~ ~r/needs Python #{Regex.escape(version)} at \S+/

    # A release made without Snex.Release.after_assemble/1 (here: without what it copied)
    # does not fall back on the build's venv, although it is still there: the error says what
    # is missing and how to fix it.
    bare = Path.join(root, "bare/release_app")
    File.mkdir_p!(Path.dirname(bare))
    File.cp_r!(built, bare)
    File.rm_rf!(Path.join(app_dir_in(bare), "priv/snex"))
    assert File.dir?(Path.join(app, "_build/prod/snex/ReleaseApp.NumpyInterpreter/.venv"))
    output = try_numpy(bare)
    assert output =~ "numpy error: python_not_found: the Python environment of "
    assert output =~ "ReleaseApp.NumpyInterpreter is not in this release"
    assert output =~ "add &Snex.Release.after_assemble/1 after :assemble"
    assert output =~ "It needs Python #{minor(version)} (it was built with Python #{version} at "

    moved = Path.join(root, "elsewhere/release_app")
    File.mkdir_p!(Path.dirname(moved))
    File.rename!(built, moved)
    File.rm_rf!(Path.join(root, "build"))

    {output, status} =
      System.cmd(Path.join(moved, "bin/release_app"), ["eval", "ReleaseApp.run()"],
        env: [{"PATH", path_without_uv()}, {"MIX_ENV", nil}],
        stderr_to_stdout: true
      )

    assert status == 0, output
    assert output =~ "numpy det: -2.0"
    assert output =~ "numpy prefix: #{moved}/lib/release_app-0.1.0/priv/snex/"
    assert output =~ "project: Hello, release!"

    # Where the base Python the venv was made with is not at its path, the error names that
    # path, the version and the fix.
    venv = Path.join(app_dir_in(moved), "priv/snex/ReleaseApp.NumpyInterpreter/.venv")
    gone = "/opt/snex-gone/bin/python#{minor(version)}"
    File.rm!(Path.join(venv, "bin/python"))
    File.ln_s!(gone, Path.join(venv, "bin/python"))
    output = try_numpy(moved)
    assert output =~ "numpy error: python_not_found: the Python environment of "
    assert output =~ "ReleaseApp.NumpyInterpreter cannot run: the virtual environment #{venv} "
    assert output =~ "was made with Python #{version} at #{gone}"
    assert output =~ "Install Python #{version} at #{gone}, or make the environment again"
  end

  defp try_numpy(release) do
    {output, 0} =
      System.cmd(Path.join(release, "bin/release_app"), ["eval", "ReleaseApp.try_numpy()"],
        env: [{"PATH", path_without_uv()}, {"MIX_ENV", nil}],
        stderr_to_stdout: true
      )

    output
  end

  defp app_dir_in(release) do
    [app_dir] = Path.wildcard(Path.join(release, "lib/release_app-*"))
    app_dir
  end

  defp pyvenv_cfg(venv) do
    for line <- File.read!(Path.join(venv, "pyvenv.cfg")) |> String.split("\n"),
        [key, value] <- [String.split(line, "=", parts: 2)],
        into: %{},
        do: {String.trim(key), String.trim(value)}
  end

  defp minor(version), do: version |> String.split(".") |> Enum.take(2) |> Enum.join(".")

  defp path_without_uv do
    path = System.get_env("PATH") |> String.split(":") |> Enum.reject(&uv_in?/1) |> Enum.join(":")
    assert {_, status} = System.cmd("sh", ["-c", "command -v uv"], env: [{"PATH", path}])
    assert status != 0, "uv is still reachable"
    path
  end

  defp uv_in?(dir), do: File.exists?(Path.join(dir, "uv"))
end
