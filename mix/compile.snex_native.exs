Code.require_file("snex_native_json.exs", __DIR__)

defmodule Mix.Tasks.Compile.SnexNative do
  @shortdoc "Builds the Snex NIF with cargo and installs the Python package into priv/"
  @moduledoc """
  Builds `native/snex_nif` and `native/snex_helper` with `cargo build --release` and copies the
  library and the `snex_helper` program (which starts and watches Python) to `priv/native/` of
  the application's build directory, then copies the `snex` Python package to `priv/python/`
  and compiles it to bytecode there (see `compile_python/2`).
  Cargo runs only when a Rust source, `Cargo.toml` or `Cargo.lock` is newer than the installed
  library, or the helper is missing; its output (which crate it is compiling) is shown as it
  comes.

  Cargo builds in `$CARGO_TARGET_DIR` when that is set (a relative path is taken from Snex's
  directory, as cargo would), otherwise in `snex_cargo/` under the build path
  (`_build/<env>/snex_cargo`), never in Snex's own source tree. Only the files that cargo
  reports for this build are installed: a library left in the target directory by another
  build never is.

  Cargo must be at least as new as the `rust-version` of Snex's `Cargo.toml` (what Rustler
  needs); an older one is refused with a message that says so.

  Set `SNEX_CARGO_PROFILE=debug` to build without optimisations.
  """
  use Mix.Task.Compiler

  alias Mix.Tasks.Compile.SnexNative.JSON

  @impl Mix.Task.Compiler
  def run(_args) do
    root = Path.dirname(Mix.Project.project_file())
    priv = Path.join(Mix.Project.app_path(), "priv")
    native = Path.join(priv, "native")

    if stale?(root, native) do
      build(root, native, default_target_dir: default_target_dir())
    end

    dest = Path.join(priv, "python/snex")
    changed? = install_python(Path.join(root, "python/snex"), dest)

    if changed? or not File.dir?(Path.join(dest, "__pycache__")) do
      compile_python(dest, System.find_executable("python3") || System.find_executable("python"))
    end

    {:ok, []}
  end

  @doc """
  Where cargo builds when `CARGO_TARGET_DIR` is not set: `snex_cargo/` in the build path of
  the project being compiled (a dependency's build path is its parent project's).
  """
  @spec default_target_dir() :: Path.t()
  def default_target_dir, do: Path.join(Mix.Project.build_path(), "snex_cargo")

  @doc """
  Builds the NIF and the helper of the Snex sources in `root` with cargo and installs them into
  `dest_dir`. Returns the files cargo reported, which were installed. Raises `Mix.Error` when
  cargo is missing, older than the `rust-version` of `root/Cargo.toml`, fails, or does not
  report the library or the helper.

  Options:

    * `:default_target_dir` (required) - where cargo builds unless `CARGO_TARGET_DIR` is set.
    * `:env` - environment variables (a map or a list of pairs) that replace the process's
      own when finding and running cargo; `nil` unsets one.
  """
  @spec build(Path.t(), Path.t(), keyword()) :: %{library: Path.t(), helper: Path.t()}
  def build(root, dest_dir, opts) do
    overrides = Map.new(Keyword.get(opts, :env, %{}))
    env = Map.merge(System.get_env(), overrides)
    cargo = find_cargo(env)
    check_version(cargo, root, overrides)

    profile = env_value(env, "SNEX_CARGO_PROFILE") || "release"

    target_dir =
      case env_value(env, "CARGO_TARGET_DIR") do
        nil -> Keyword.fetch!(opts, :default_target_dir)
        dir -> Path.expand(dir, root)
      end

    args =
      [
        "build",
        "--message-format=json-render-diagnostics",
        "-p",
        "snex_nif",
        "-p",
        "snex_helper",
        "--manifest-path",
        Path.join(root, "Cargo.toml"),
        "--target-dir",
        target_dir
      ] ++ if(profile == "release", do: ["--release"], else: [])

    Mix.shell().info("Compiling Snex NIF (cargo #{profile}, in #{target_dir})")

    case run_cargo(cargo, args, root, overrides) do
      {0, artifacts} ->
        built = %{
          library: built!(artifacts, :library, "libsnex_nif"),
          helper: built!(artifacts, :helper, "snex_helper")
        }

        File.mkdir_p!(dest_dir)
        install(built.helper, Path.join(dest_dir, "snex_helper"), 0o755)
        install(built.library, Path.join(dest_dir, "libsnex_nif.so"), nil)
        built

      {status, _} ->
        Mix.raise(
          "cargo build of the Snex NIF failed (exit status #{status}); see its output above"
        )
    end
  end

  defp env_value(env, name) do
    case Map.get(env, name) do
      value when value in [nil, ""] -> nil
      value -> value
    end
  end

  defp find_cargo(env) do
    on_path =
      case :os.find_executable(~c"cargo", String.to_charlist(Map.get(env, "PATH") || "")) do
        false -> nil
        path -> List.to_string(path)
      end

    cargo_home = env_value(env, "CARGO_HOME") || Path.expand("~/.cargo")
    cargo = on_path || Path.join(cargo_home, "bin/cargo")

    unless File.exists?(cargo) do
      Mix.raise("cargo is needed to build the Snex NIF; install Rust (https://rustup.rs)")
    end

    cargo
  end

  # Cargo refuses a too-new `Cargo.lock` or manifest with messages that do not say what is
  # needed; this says it first.
  defp check_version(cargo, root, overrides) do
    with {:ok, minimum} <- minimum_version(root),
         {output, 0} <-
           System.cmd(cargo, ["--version"], cd: root, env: Enum.to_list(overrides)),
         [_, found] <- Regex.run(~r/^cargo (\d+\.\d+\.\d+)/, output),
         :lt <- Version.compare(found, minimum) do
      Mix.raise("""
      Snex needs Rust #{minimum} or newer to build its NIF, but #{cargo} is version #{found}.
      Update Rust (with rustup: `rustup update stable`; see https://rustup.rs) and compile again.\
      """)
    else
      _ -> :ok
    end
  end

  @doc "The `rust-version` of the `Cargo.toml` in `root`, as `major.minor.patch`."
  @spec minimum_version(Path.t()) :: {:ok, String.t()} | :error
  def minimum_version(root) do
    with {:ok, toml} <- File.read(Path.join(root, "Cargo.toml")),
         [_, major, minor | patch] <-
           Regex.run(~r/^rust-version\s*=\s*"(\d+)\.(\d+)(?:\.(\d+))?"/m, toml) do
      {:ok, "#{major}.#{minor}.#{if patch in [[], [""]], do: 0, else: patch}"}
    else
      _ -> :error
    end
  end

  # Runs cargo with its output (standard error included) shown line by line, except for its
  # JSON messages, from which the library and the helper it built are kept.
  defp run_cargo(cargo, args, root, overrides) do
    env =
      for {name, value} <- overrides do
        {String.to_charlist(name), if(value, do: String.to_charlist(value), else: false)}
      end

    port =
      Port.open({:spawn_executable, cargo}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        :hide,
        {:line, 65_536},
        args: args,
        cd: root,
        env: env
      ])

    collect(port, "", %{})
  end

  defp collect(port, partial, artifacts) do
    receive do
      {^port, {:data, {:noeol, chunk}}} ->
        collect(port, partial <> chunk, artifacts)

      {^port, {:data, {:eol, chunk}}} ->
        collect(port, "", line(partial <> chunk, artifacts))

      {^port, {:exit_status, status}} ->
        {status, if(partial == "", do: artifacts, else: line(partial, artifacts))}
    end
  end

  defp line(line, artifacts) do
    with "{" <> _ <- line,
         {:ok, %{"reason" => reason} = message} <- JSON.decode(line) do
      artifact(reason, message, artifacts)
    else
      _ ->
        Mix.shell().info(line)
        artifacts
    end
  end

  defp artifact("compiler-artifact", %{"target" => %{"name" => "snex_nif"}} = message, acc) do
    case Enum.find(message["filenames"] || [], &library?/1) do
      nil -> acc
      file -> Map.put(acc, :library, file)
    end
  end

  defp artifact("compiler-artifact", %{"target" => %{"name" => "snex_helper"}} = message, acc) do
    case message["executable"] do
      file when is_binary(file) -> Map.put(acc, :helper, file)
      _ -> acc
    end
  end

  defp artifact(_reason, _message, acc), do: acc

  defp library?(file) when is_binary(file),
    do: Path.basename(file) in ["libsnex_nif.so", "libsnex_nif.dylib"]

  defp library?(_), do: false

  defp built!(artifacts, kind, name) do
    case artifacts do
      %{^kind => file} ->
        if File.regular?(file),
          do: file,
          else: Mix.raise("cargo reported #{file}, which is missing")

      _ ->
        Mix.raise("cargo did not report building #{name}; see its output above")
    end
  end

  # Copy then rename: a VM that has the old library mapped, or a helper starting right now,
  # keeps the file it has.
  defp install(built, dest, mode) do
    tmp = dest <> ".tmp"
    File.cp!(built, tmp)
    if mode, do: File.chmod!(tmp, mode)
    File.rename!(tmp, dest)
  end

  defp stale?(root, native) do
    case File.stat(Path.join(native, "libsnex_nif.so"), time: :posix) do
      {:ok, %{mtime: built}} ->
        sources =
          Path.wildcard(Path.join(root, "native/*/src/**/*.rs")) ++
            Path.wildcard(Path.join(root, "native/*/Cargo.toml")) ++
            [Path.join(root, "Cargo.toml"), Path.join(root, "Cargo.lock")]

        not File.exists?(Path.join(native, "snex_helper")) or
          Enum.any?(sources, fn file ->
            match?({:ok, %{mtime: m}} when m > built, File.stat(file, time: :posix))
          end)

      {:error, _} ->
        true
    end
  end

  # Copies the package's sources that differ; returns whether anything changed.
  defp install_python(src, dest) do
    File.mkdir_p!(dest)

    copied =
      for file <- Path.wildcard(Path.join(src, "**/*.py")),
          target = Path.join(dest, Path.relative_to(file, src)),
          not (File.exists?(target) and File.read!(target) == File.read!(file)) do
        File.mkdir_p!(Path.dirname(target))
        File.cp!(file, target)
      end

    # Remove files that no longer exist in the source, with their bytecode.
    removed =
      for file <- Path.wildcard(Path.join(dest, "**/*.py")),
          not File.exists?(Path.join(src, Path.relative_to(file, dest))) do
        File.rm!(file)
        cache = Path.join(Path.dirname(file), "__pycache__")

        Enum.each(
          Path.wildcard(Path.join(cache, Path.basename(file, ".py") <> ".*.pyc")),
          &File.rm!/1
        )
      end

    copied != [] or removed != []
  end

  @doc """
  Compiles the Python package in `dir` to bytecode (`__pycache__/*.pyc`, checked against a
  hash of the source, so that copies with new timestamps, as in a release, still use them) with
  `python`. Python then loads the package without compiling its sources at every start, even
  where it may not write bytecode itself (`PYTHONDONTWRITEBYTECODE`, a read-only directory).
  The bytecode is for `python`'s version only: another version compiles the sources as before.
  Does nothing when `python` is nil. A failure prints a warning and leaves an empty
  `__pycache__`, so that the next compiles do not try again until a source changes.
  """
  @spec compile_python(Path.t(), Path.t() | nil) :: :ok
  def compile_python(_dir, nil), do: :ok

  def compile_python(dir, python) do
    args = ["-m", "compileall", "-q", "--invalidation-mode", "checked-hash", dir]

    case System.cmd(python, args, stderr_to_stdout: true) do
      {_, 0} ->
        :ok

      {output, status} ->
        not_compiled(dir, "#{python} exited with status #{status}\n#{output}")
    end
  rescue
    e in ErlangError -> not_compiled(dir, "cannot run #{python}: #{Exception.message(e)}")
  end

  defp not_compiled(dir, why) do
    File.mkdir_p!(Path.join(dir, "__pycache__"))

    Mix.shell().info(
      "warning: the snex Python package was not compiled to bytecode (Python compiles it " <>
        "at each start instead): #{why}"
    )
  end
end
