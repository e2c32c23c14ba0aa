defmodule Snex.NativeBuildTest do
  # The Mix compiler that builds the NIF and the helper (mix/compile.snex_native.exs): where
  # cargo builds, what gets installed, and the messages. Real cargo builds share the suite's
  # target directory (a no-op there); the failure cases use a fake `cargo` on PATH.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO

  alias Mix.Tasks.Compile.SnexNative
  alias Mix.Tasks.Compile.SnexNative.JSON

  @moduletag timeout: 600_000

  @root Path.expand("../..", __DIR__)

  setup do
    tmp = Path.join(System.tmp_dir!(), "snex_native_build_#{System.unique_integer([:positive])}")
    File.mkdir_p!(tmp)
    on_exit(fn -> File.rm_rf!(tmp) end)
    {:ok, tmp: tmp, dest: Path.join(tmp, "priv/native"), default: Path.join(tmp, "default")}
  end

  describe "where cargo builds" do
    test "in CARGO_TARGET_DIR when it is set, and that build is installed", ctx do
      shared = SnexNative.default_target_dir()

      # Absolute, and relative (to Snex's directory, as for cargo).
      for target_dir <- [shared, Path.relative_to(shared, @root)] do
        {built, output} =
          with_io(fn ->
            SnexNative.build(@root, ctx.dest,
              default_target_dir: ctx.default,
              env: %{"CARGO_TARGET_DIR" => target_dir}
            )
          end)

        assert output =~ "Compiling Snex NIF (cargo "
        assert output =~ " in #{shared})"
        assert String.starts_with?(built.library, shared <> "/")
        assert String.starts_with?(built.helper, shared <> "/")
        assert_installed(ctx.dest, built)
        refute File.exists?(ctx.default)
      end
    end

    test "under the build path when CARGO_TARGET_DIR is not set", ctx do
      # The suite's own build (the compiler run by `mix test`) is there, not in the sources.
      assert String.starts_with?(SnexNative.default_target_dir(), Mix.Project.build_path() <> "/")

      assert [_ | _] =
               Path.wildcard(Path.join(SnexNative.default_target_dir(), "*/libsnex_nif.so"))

      {built, _} =
        with_io(fn ->
          SnexNative.build(@root, ctx.dest,
            default_target_dir: SnexNative.default_target_dir(),
            env: %{"CARGO_TARGET_DIR" => nil}
          )
        end)

      assert String.starts_with?(built.library, SnexNative.default_target_dir() <> "/")
      assert_installed(ctx.dest, built)

      assert File.read!(Application.app_dir(:snex, "priv/native/libsnex_nif.so")) ==
               File.read!(built.library)
    end
  end

  test "as a dependency, cargo builds in the parent project's _build, not in Snex's tree", ctx do
    app = Path.join(ctx.tmp, "app")
    File.mkdir_p!(app)

    File.write!(Path.join(app, "mix.exs"), """
    defmodule App.MixProject do
      use Mix.Project
      def project, do: [app: :app, version: "0.1.0", deps: [{:snex, path: #{inspect(@root)}}]]
    end
    """)

    env = fake_cargo(ctx, "exit 1")

    {output, status} =
      System.cmd("mix", ["compile"],
        cd: app,
        env: Enum.to_list(env) ++ [{"MIX_ENV", "dev"}, {"CARGO_TARGET_DIR", nil}],
        stderr_to_stdout: true
      )

    assert status != 0
    assert output =~ "cargo build of the Snex NIF failed (exit status 1)"
    assert File.read!(Path.join(ctx.tmp, "args")) =~ " --target-dir #{app}/_build/dev/snex_cargo "
  end

  describe "with a fake cargo" do
    test "shows cargo's output as it builds and installs the files it reports", ctx do
      # A path that JSON escapes, and a message longer than one line of the port.
      out = Path.join(ctx.tmp, ~s(tar"get é/release))
      File.mkdir_p!(out)
      File.write!(Path.join(out, "libsnex_nif.so"), "new library")
      File.write!(Path.join(out, "snex_helper"), "new helper")
      json_out = out |> String.replace(~s("), ~s(\\")) |> String.replace("é", "\\u00e9")

      messages = [
        ~s({"reason":"compiler-artifact","target":{"kind":["lib"],"name":"libc"},) <>
          ~s("filenames":["#{String.duplicate("x", 100_000)}"],"executable":null}),
        ~s({"reason":"compiler-artifact","target":{"kind":["cdylib"],"name":"snex_nif"},) <>
          ~s("filenames":["#{json_out}/libsnex_nif.so"],"executable":null,"fresh":false}),
        ~s({"reason":"compiler-artifact","target":{"kind":["bin"],"name":"snex_helper"},) <>
          ~s("filenames":["#{json_out}/snex_helper"],"executable":"#{json_out}/snex_helper"}),
        ~s({"reason":"build-finished","success":true})
      ]

      File.write!(Path.join(ctx.tmp, "messages"), Enum.join(messages, "\n") <> "\n")

      env =
        fake_cargo(ctx, """
        echo '   Compiling fake v0.0.0' >&2
        cat "#{ctx.tmp}/messages"
        echo '    Finished `release` profile' >&2
        """)

      {built, output} =
        with_io(fn ->
          SnexNative.build(@root, ctx.dest,
            default_target_dir: ctx.default,
            env: Map.put(env, "CARGO_TARGET_DIR", Path.join(ctx.tmp, "t"))
          )
        end)

      assert built == %{
               library: Path.join(out, "libsnex_nif.so"),
               helper: Path.join(out, "snex_helper")
             }

      assert output =~ ~r/Compiling fake v0.0.0\n.*Finished `release` profile\n/s
      refute output =~ "reason"
      assert File.read!(Path.join(ctx.dest, "libsnex_nif.so")) == "new library"
      assert File.read!(Path.join(ctx.dest, "snex_helper")) == "new helper"

      args = File.read!(Path.join(ctx.tmp, "args"))
      assert args =~ " --target-dir #{ctx.tmp}/t"
      refute args =~ "--quiet"
    end

    test "a library left in the target directory is never installed", ctx do
      target = Path.join(ctx.tmp, "t")
      File.mkdir_p!(Path.join(target, "release"))
      File.write!(Path.join(target, "release/libsnex_nif.so"), "stale")
      File.write!(Path.join(target, "release/snex_helper"), "stale")

      build = fn env ->
        SnexNative.build(@root, ctx.dest, default_target_dir: target, env: env)
      end

      # cargo fails
      env = fake_cargo(ctx, "echo 'error: could not compile `snex_nif`' >&2\nexit 101")

      capture_io(fn ->
        assert_raise Mix.Error, ~r/cargo build of the Snex NIF failed \(exit status 101\)/, fn ->
          build.(env)
        end
      end)

      refute File.exists?(ctx.dest)

      # cargo succeeds but reports nothing it built
      env = fake_cargo(ctx, ~s(echo '{"reason":"build-finished","success":true}'))

      capture_io(fn ->
        assert_raise Mix.Error, ~r/cargo did not report building libsnex_nif/, fn ->
          build.(env)
        end
      end)

      refute File.exists?(ctx.dest)
    end

    test "a cargo older than the rust-version of Cargo.toml is refused, saying why", ctx do
      {:ok, minimum} = SnexNative.minimum_version(@root)
      env = fake_cargo(ctx, "exit 0", "1.70.0")

      error =
        assert_raise Mix.Error, fn ->
          SnexNative.build(@root, ctx.dest, default_target_dir: ctx.default, env: env)
        end

      assert error.message =~ "Snex needs Rust #{minimum} or newer to build its NIF, but "
      assert error.message =~ "/bin/cargo is version 1.70.0."
      assert error.message =~ "rustup update stable"
      refute File.exists?(Path.join(ctx.tmp, "args"))
    end
  end

  test "the minimum Rust version is what the dependencies need" do
    {:ok, minimum} = SnexNative.minimum_version(@root)

    {metadata, 0} =
      System.cmd(
        System.find_executable("cargo") || Path.expand("~/.cargo/bin/cargo"),
        ~w(metadata --format-version 1 --locked --offline --manifest-path #{@root}/Cargo.toml)
      )

    {:ok, %{"packages" => packages}} = JSON.decode(metadata)

    needed =
      for %{"rust_version" => version} when is_binary(version) <- packages do
        case String.split(version, ".") do
          [major, minor] -> "#{major}.#{minor}.0"
          _ -> version
        end
      end

    assert Enum.max(needed, Version) == minimum
  end

  test "the JSON decoder" do
    assert JSON.decode(~s( {"a": [1, -2.5, 3e2, 1E-1, true, false, null], "b": {}, "c": []} )) ==
             {:ok, %{"a" => [1, -2.5, 300.0, 0.1, true, false, nil], "b" => %{}, "c" => []}}

    assert JSON.decode(~S("q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00 é")) ==
             {:ok, "q\" b\\ s/ \b\f\n\r\t é 😀 é"}

    for bad <- [
          "",
          "{",
          ~s({"a" 1}),
          ~s({"a": 1,}),
          "[1,]",
          "[1 2]",
          ~s("open),
          ~s("\\x"),
          ~s("\\ud83d"),
          "01",
          "1.",
          "1e999",
          "tru",
          "{} {}",
          "\"tab\t\""
        ] do
      assert JSON.decode(bad) == :error, bad
    end
  end

  defp assert_installed(dest, built) do
    assert File.read!(Path.join(dest, "libsnex_nif.so")) == File.read!(built.library)
    assert File.read!(Path.join(dest, "snex_helper")) == File.read!(built.helper)
    assert %{mode: mode} = File.stat!(Path.join(dest, "snex_helper"))
    assert Bitwise.band(mode, 0o111) == 0o111
  end

  # A `cargo` first on PATH that reports `version` and runs `script` for a build, after
  # writing its arguments to `args` in the test's directory. Returns the environment.
  defp fake_cargo(ctx, script, version \\ nil) do
    version = version || elem(SnexNative.minimum_version(@root), 1)
    bin = Path.join(ctx.tmp, "bin")
    File.mkdir_p!(bin)

    File.write!(Path.join(bin, "cargo"), """
    #!/bin/sh
    if [ "$1" = --version ]; then echo "cargo #{version} (0000000 2025-01-01)"; exit 0; fi
    echo " $*" > "#{ctx.tmp}/args"
    #{script}
    """)

    File.chmod!(Path.join(bin, "cargo"), 0o755)
    %{"PATH" => bin <> ":" <> System.get_env("PATH")}
  end
end
