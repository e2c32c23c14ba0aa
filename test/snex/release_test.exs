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
      System.cmd("mix", ["release", "--overwrite", "--quiet"],
        cd: app,
        env: [{"MIX_ENV", "prod"}, {"SNEX_PATH", @snex_root}],
        stderr_to_stdout: true
      )

    assert status == 0, output

    # Only the release's interpreters are copied, each into its own application's priv dir.
    built = Path.join(app, "_build/prod/rel/release_app")
    [app_dir] = Path.wildcard(Path.join(built, "lib/release_app-*"))

    assert File.ls!(Path.join(app_dir, "priv/snex")) |> Enum.sort() ==
             ["ReleaseApp.NumpyInterpreter", "ReleaseApp.ProjectInterpreter"]

    assert Path.wildcard(Path.join(built, "lib/snex-*/priv/snex")) == []

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
  end

  defp path_without_uv do
    path = System.get_env("PATH") |> String.split(":") |> Enum.reject(&uv_in?/1) |> Enum.join(":")
    assert {_, status} = System.cmd("sh", ["-c", "command -v uv"], env: [{"PATH", path}])
    assert status != 0, "uv is still reachable"
    path
  end

  defp uv_in?(dir), do: File.exists?(Path.join(dir, "uv"))
end
