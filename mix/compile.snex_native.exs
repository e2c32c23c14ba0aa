defmodule Mix.Tasks.Compile.SnexNative do
  @shortdoc "Builds the Snex NIF with cargo and installs the Python package into priv/"
  @moduledoc """
  Builds `native/snex_nif` and `native/snex_helper` with `cargo build --release` and copies the
  library and the `snex_helper` program (which starts and watches Python) to `priv/native/` of
  the application's build directory, then copies the `snex` Python package to `priv/python/`.
  Cargo runs only when a Rust source, `Cargo.toml` or `Cargo.lock` is newer than the installed
  library, or the helper is missing.

  Set `SNEX_CARGO_PROFILE=debug` to build without optimisations.
  """
  use Mix.Task.Compiler

  @impl Mix.Task.Compiler
  def run(_args) do
    root = Path.dirname(Mix.Project.project_file())
    priv = Path.join(Mix.Project.app_path(), "priv")

    with :ok <- build_nif(root, Path.join(priv, "native")),
         :ok <- install_python(Path.join(root, "python/snex"), Path.join(priv, "python/snex")) do
      {:ok, []}
    end
  end

  defp build_nif(root, dest_dir) do
    dest = Path.join(dest_dir, "libsnex_nif.so")

    if stale?(root, dest) or not File.exists?(Path.join(dest_dir, "snex_helper")) do
      cargo = System.find_executable("cargo") || Path.expand("~/.cargo/bin/cargo")

      unless File.exists?(cargo) do
        Mix.raise("cargo is needed to build the Snex NIF; install Rust (https://rustup.rs)")
      end

      profile = System.get_env("SNEX_CARGO_PROFILE", "release")

      args = [
        "build",
        "--quiet",
        "-p",
        "snex_nif",
        "-p",
        "snex_helper",
        "--manifest-path",
        Path.join(root, "Cargo.toml")
      ]

      args = if profile == "release", do: args ++ ["--release"], else: args

      Mix.shell().info("Compiling Snex NIF (cargo #{profile})")

      case System.cmd(cargo, args, cd: root, stderr_to_stdout: true, into: IO.stream()) do
        {_, 0} ->
          install_helper(root, profile, dest_dir)
          install_library(root, profile, dest_dir, dest)

        {_, status} ->
          Mix.raise("cargo build of the Snex NIF failed (exit status #{status})")
      end
    else
      :ok
    end
  end

  defp install_library(root, profile, dest_dir, dest) do
    built =
      Enum.find(
        ["libsnex_nif.so", "libsnex_nif.dylib"],
        &File.exists?(Path.join([root, "target", profile, &1]))
      ) || Mix.raise("cargo did not produce libsnex_nif")

    File.mkdir_p!(dest_dir)
    # Copy then rename, so that a VM that has the old library mapped is not disturbed.
    tmp = dest <> ".tmp"
    File.cp!(Path.join([root, "target", profile, built]), tmp)
    File.rename!(tmp, dest)
    :ok
  end

  defp install_helper(root, profile, dest_dir) do
    built = Path.join([root, "target", profile, "snex_helper"])
    unless File.exists?(built), do: Mix.raise("cargo did not produce snex_helper")
    File.mkdir_p!(dest_dir)
    dest = Path.join(dest_dir, "snex_helper")
    # Copy then rename: a helper starting right now keeps the file it is executing.
    tmp = dest <> ".tmp"
    File.cp!(built, tmp)
    File.chmod!(tmp, 0o755)
    File.rename!(tmp, dest)
  end

  defp stale?(root, dest) do
    case File.stat(dest, time: :posix) do
      {:ok, %{mtime: built}} ->
        sources =
          Path.wildcard(Path.join(root, "native/*/src/**/*.rs")) ++
            Path.wildcard(Path.join(root, "native/*/Cargo.toml")) ++
            [Path.join(root, "Cargo.toml"), Path.join(root, "Cargo.lock")]

        Enum.any?(sources, fn file ->
          match?({:ok, %{mtime: m}} when m > built, File.stat(file, time: :posix))
        end)

      {:error, _} ->
        true
    end
  end

  defp install_python(src, dest) do
    File.mkdir_p!(dest)

    for file <- Path.wildcard(Path.join(src, "**/*.py")) do
      target = Path.join(dest, Path.relative_to(file, src))

      unless File.exists?(target) and File.read!(target) == File.read!(file) do
        File.mkdir_p!(Path.dirname(target))
        File.cp!(file, target)
      end
    end

    # Remove files that no longer exist in the source.
    for file <- Path.wildcard(Path.join(dest, "**/*.py")),
        not File.exists?(Path.join(src, Path.relative_to(file, dest))) do
      File.rm!(file)
    end

    :ok
  end
end
