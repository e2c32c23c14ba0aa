defmodule Snex.MixInstallTest do
  # `Mix.install([{:snex, path: ...}])` in a script run with `elixir`, as in Livebook: Snex and
  # its NIF are built by Mix.install through Snex's own compiler, and an interpreter with a
  # `pyproject_toml` gets its venv in a cache directory keyed by the project's content.
  use ExUnit.Case, async: true

  @moduletag timeout: 600_000

  @script Path.expand("../fixtures/mix_install/script.exs", __DIR__)
  @snex_root Path.expand("../..", __DIR__)

  setup do
    root = Path.join(System.tmp_dir!(), "snex_mix_install_#{System.unique_integer([:positive])}")
    File.mkdir_p!(root)
    on_exit(fn -> File.rm_rf!(root) end)
    {:ok, root: root}
  end

  test "a pyproject_toml interpreter works in a Mix.install script", %{root: root} do
    # Mix's cache (Mix.Utils.mix_cache/0) follows XDG_CACHE_HOME; uv keeps its own cache.
    {uv_cache, 0} = System.cmd("uv", ["cache", "dir"])

    env = [
      {"SNEX_PATH", @snex_root},
      {"MIX_INSTALL_DIR", Path.join(root, "installs")},
      {"XDG_CACHE_HOME", Path.join(root, "cache")},
      {"UV_CACHE_DIR", String.trim(uv_cache)},
      # The NIF's cargo build is shared with the suite's (cargo locks it).
      {"CARGO_TARGET_DIR", Mix.Tasks.Compile.SnexNative.default_target_dir()},
      {"MIX_ENV", nil},
      {"SNEX_CACHE_DIR", nil}
    ]

    {output, status} = System.cmd("elixir", [@script], env: env, stderr_to_stdout: true, cd: root)
    assert status == 0, output

    assert [_, prefix] = Regex.run(~r/^prefix: (.*)$/m, output)
    assert String.starts_with?(prefix, Path.join(root, "cache/mix/snex/projects/"))
    assert output =~ ~r/^sum: 6$/m
    # The NIF module was loaded from the Mix.install build.
    assert [_, nif] = Regex.run(~r/^nif: (.*)$/m, output)
    assert String.starts_with?(nif, Path.join(root, "installs"))
    assert [_] = Path.wildcard(Path.join(root, "installs/**/priv/native/libsnex_nif.*"))

    # Another script with the same project (here: the same script, installed afresh) finds
    # the environment in the cache, without syncing again. (A fresh install dir: Elixir 1.18's
    # Mix.install, run again in the same one, wants Hex, which may not be installed.)
    env =
      List.keyreplace(env, "MIX_INSTALL_DIR", 0, {"MIX_INSTALL_DIR", Path.join(root, "again")})

    {output2, status} =
      System.cmd("elixir", [@script], env: env, stderr_to_stdout: true, cd: root)

    assert status == 0, output2
    assert [_, ^prefix] = Regex.run(~r/^prefix: (.*)$/m, output2)
    refute output2 =~ "Syncing the Python environment"
  end
end
