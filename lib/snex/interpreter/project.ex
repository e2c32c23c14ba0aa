defmodule Snex.Interpreter.Project do
  @moduledoc false
  # The Python project of a custom interpreter module (`use Snex.Interpreter, pyproject_toml:
  # ...` or `project_path: ...`).
  #
  # At compile time `uv sync` builds the module's virtual environment in
  # `_build/$MIX_ENV/snex/<Module>/.venv` from the project's dependencies (the project itself is
  # not installed: a `project_path` project's own modules are imported from its directory, which
  # becomes Python's working directory). Without a Mix project (a script using `Mix.install/2`,
  # Livebook) the venv goes to a cache directory keyed by the project's content instead (see
  # `cache_root/0`). At run time the venv is looked up first in the owning application's
  # `priv/snex/<Module>/`, where `Snex.Release` puts it in a release; then, unless the
  # application runs from a release, in the build directory.

  alias Snex.Interpreter.PythonLookup

  @enforce_keys [:module, :app, :name, :build_dir, :project_dir, :inline?]
  defstruct [
    :module,
    :app,
    :name,
    :build_dir,
    :project_dir,
    :inline?,
    app_path: nil,
    stamp: nil,
    python_version: nil,
    python_base: nil
  ]

  @typedoc """
  `app_path` is where the application was built (`Mix.Project.app_path/0`; nil without a Mix
  project); `python_version` and `python_base` are the version and executable of the base
  Python the venv was made with (from its `pyvenv.cfg`).
  """
  @type t :: %__MODULE__{
          module: module(),
          app: atom() | nil,
          name: String.t(),
          build_dir: Path.t(),
          project_dir: Path.t(),
          inline?: boolean(),
          app_path: Path.t() | nil,
          stamp: String.t() | nil,
          python_version: String.t() | nil,
          python_base: String.t() | nil
        }

  @use_keys [:pyproject_toml, :project_path]

  @doc """
  The project declared by the options of `use Snex.Interpreter`, synced with uv; nil when none
  is declared. Raises `CompileError` for bad options or a failed sync.
  """
  @spec prepare!(module(), keyword(), Macro.Env.t()) :: t() | nil
  def prepare!(module, opts, env) do
    case from_use_opts!(module, opts, env) do
      nil -> nil
      project -> sync!(project, opts[:pyproject_toml], env)
    end
  end

  defp from_use_opts!(module, opts, env) do
    unless Keyword.keyword?(opts) do
      compile_error!(env, "use Snex.Interpreter takes a keyword list, got: #{inspect(opts)}")
    end

    case Keyword.keys(opts) -- @use_keys do
      [] ->
        :ok

      unknown ->
        compile_error!(
          env,
          "unknown options for use Snex.Interpreter: #{inspect(unknown)}; " <>
            "known: #{inspect(@use_keys)}"
        )
    end

    case {Keyword.fetch(opts, :pyproject_toml), Keyword.fetch(opts, :project_path)} do
      {:error, :error} ->
        nil

      {{:ok, _}, {:ok, _}} ->
        compile_error!(env, "give either :pyproject_toml or :project_path, not both")

      {{:ok, toml}, :error} when is_binary(toml) ->
        build_dir = build_dir(module, ["inline", 0, toml])
        new(module, build_dir, build_dir, true)

      {:error, {:ok, path}} when is_binary(path) ->
        project_dir = Path.expand(path)

        unless File.regular?(Path.join(project_dir, "pyproject.toml")) do
          compile_error!(env, "project_path #{inspect(path)} has no pyproject.toml")
        end

        pyproject = File.read!(Path.join(project_dir, "pyproject.toml"))
        new(module, build_dir(module, ["path", 0, project_dir, 0, pyproject]), project_dir, false)

      _ ->
        compile_error!(env, ":pyproject_toml and :project_path must be strings")
    end
  end

  defp new(module, build_dir, project_dir, inline?) do
    # An umbrella's root has no application (and no app_path).
    app = if mix_project?(), do: Mix.Project.config()[:app]
    app_path = if app, do: Mix.Project.app_path()

    %__MODULE__{
      module: module,
      app: app,
      app_path: app_path,
      name: inspect(module),
      build_dir: build_dir,
      project_dir: project_dir,
      inline?: inline?
    }
  end

  # In a Mix project: `_build/$MIX_ENV/snex/<Module>`. Without one: a directory of the cache
  # named after the hash of `key` (the project's content).
  defp build_dir(module, key) do
    if mix_project?() do
      Path.join([Mix.Project.build_path(), "snex", inspect(module)])
    else
      hash = key |> :erlang.md5() |> Base.encode16(case: :lower)
      Path.join([cache_root(), "projects", hash])
    end
  end

  @doc """
  Where the environments of interpreters compiled outside a Mix project (`Mix.install/2`
  scripts, Livebook) are kept: `$SNEX_CACHE_DIR` when set, else `snex/` in Mix's cache
  directory (`Mix.Utils.mix_cache/0`, e.g. `~/.cache/mix/snex`), or in the user's cache
  directory when Mix is not running.
  """
  @spec cache_root() :: Path.t()
  def cache_root do
    case System.get_env("SNEX_CACHE_DIR") do
      dir when dir in [nil, ""] -> default_cache_root()
      dir -> Path.expand(dir)
    end
  end

  defp default_cache_root do
    if mix_started?(),
      do: Path.join(Mix.Utils.mix_cache(), "snex"),
      else: :filename.basedir(:user_cache, ~c"snex") |> List.to_string()
  end

  defp mix_started?,
    do: Code.ensure_loaded?(Mix) and List.keymember?(Application.started_applications(), :mix, 0)

  defp mix_project?, do: mix_started?() and Mix.Project.get() != nil

  # Creates or updates the virtual environment with `uv sync`, unless nothing changed since the
  # last sync. Returns the project with its stamp.
  defp sync!(%__MODULE__{} = project, toml, env) do
    File.mkdir_p!(project.build_dir)
    if project.inline?, do: write_if_changed!(pyproject_path(project), toml)
    stamp = inputs_stamp(project)

    project =
      if stamp == read_stamp(project) and File.exists?(python(project.build_dir)) do
        %{project | stamp: stamp}
      else
        run_uv!(project, env)
        stamp = inputs_stamp(project)
        File.write!(stamp_path(project), stamp)
        %{project | stamp: stamp}
      end

    info = PythonLookup.venv_info(venv(project.build_dir)) || %{version: nil, base: nil}
    %{project | python_version: info.version, python_base: info.base}
  end

  @doc "True when the module must be compiled again: the project changed or its venv is gone."
  @spec stale?(t()) :: boolean()
  def stale?(%__MODULE__{} = project) do
    not File.exists?(python(project.build_dir)) or inputs_stamp(project) != project.stamp
  end

  @doc """
  `Snex.Interpreter.start_link/1` options for this project: the venv's Python, and unless
  given, the working directory (`project_path` projects), the label (the module) and the
  environment of the venv (`VIRTUAL_ENV`, its `bin` first on `PATH`).

  Unless `:python` is given, fails with a `:python_not_found` error when the venv is missing
  (not in the release, or not built) or cannot run (its base Python is gone), saying which
  Python it needs and how to fix it.
  """
  @spec start_opts(t() | nil, module(), keyword()) :: {:ok, keyword()} | {:error, Snex.Error.t()}
  def start_opts(nil, module, opts), do: {:ok, Keyword.put_new(opts, :label, module)}

  def start_opts(%__MODULE__{} = project, _module, opts) do
    with {:ok, venv_root, project_dir} <- runtime_dirs(project),
         :ok <- if(Keyword.has_key?(opts, :python), do: :ok, else: check_venv(project, venv_root)) do
      venv = venv(venv_root)

      venv_env = %{
        "VIRTUAL_ENV" => venv,
        "PATH" => Enum.join([Path.join(venv, "bin"), System.get_env("PATH", "")], ":")
      }

      {:ok,
       opts
       |> Keyword.put_new(:python, python(venv_root))
       |> Keyword.put_new(:label, project.module)
       |> put_new_cd(project_dir)
       |> Keyword.update(:environment, venv_env, &merge_environment(venv_env, &1))}
    end
  end

  # An invalid :environment is left for Snex.Interpreter's validation to report.
  defp merge_environment(venv_env, given) when is_map(given), do: Map.merge(venv_env, given)
  defp merge_environment(_venv_env, given), do: given

  defp put_new_cd(opts, nil), do: opts
  defp put_new_cd(opts, dir), do: Keyword.put_new(opts, :cd, dir)

  # {:ok, directory holding .venv, working directory or nil}, for the release or the build.
  defp runtime_dirs(project) do
    released = released_dir(project)

    cond do
      released && File.dir?(released) ->
        {:ok, released, if(project.inline?, do: nil, else: Path.join(released, "project"))}

      in_release?(project) ->
        {:error,
         not_found(
           "the Python environment of #{project.name} is not in this release (looked for " <>
             "#{venv(released)}): add &Snex.Release.after_assemble/1 after :assemble to the " <>
             "release's :steps (see Snex.Release), and build the release again. " <>
             needs(project)
         )}

      project.inline? ->
        {:ok, project.build_dir, nil}

      true ->
        {:ok, project.build_dir, project.project_dir}
    end
  end

  # The application runs from somewhere else than where Mix built it: a release.
  defp in_release?(%__MODULE__{app: app, app_path: app_path})
       when app != nil and app_path != nil do
    case :code.lib_dir(app) do
      {:error, _} -> false
      dir -> Path.expand(List.to_string(dir)) != Path.expand(app_path)
    end
  end

  defp in_release?(_project), do: false

  defp check_venv(project, venv_root) do
    venv = venv(venv_root)
    python = python(venv_root)

    cond do
      File.exists?(python) ->
        :ok

      File.dir?(venv) ->
        {:error,
         not_found(
           "the Python environment of #{project.name} cannot run: " <>
             PythonLookup.broken_venv_reason(venv) <> rebuild_hint(project, venv_root)
         )}

      true ->
        {:error,
         not_found(
           "the Python environment of #{project.name} is missing (#{venv})" <>
             rebuild_hint(project, venv_root) <> ". " <> needs(project)
         )}
    end
  end

  defp rebuild_hint(project, venv_root) do
    if venv_root == project.build_dir,
      do: "; compiling #{project.name} again (`mix compile`) makes it with uv",
      else: ""
  end

  defp needs(%__MODULE__{python_version: nil}), do: ""

  defp needs(%__MODULE__{python_version: version, python_base: base}) do
    minor = version |> String.split(".") |> Enum.take(2) |> Enum.join(".")
    at = if base, do: " at #{base}", else: ""
    "It needs Python #{minor} (it was built with Python #{version}#{at})."
  end

  defp not_found(message), do: Snex.Error.new(:python_not_found, message)

  @doc """
  Where a release holds the project, relative to its application's `priv` directory:
  `snex/<Module>` (written by `Snex.Release`, read by `start_opts/3`).
  """
  @spec release_subdir(t()) :: Path.t()
  def release_subdir(%__MODULE__{name: name}), do: Path.join("snex", name)

  defp released_dir(%__MODULE__{app: nil}), do: nil

  defp released_dir(%__MODULE__{app: app} = project) do
    case :code.priv_dir(app) do
      {:error, _} -> nil
      priv -> Path.join(List.to_string(priv), release_subdir(project))
    end
  end

  @doc "The virtual environment under a project's build or release directory `dir`."
  @spec venv(Path.t()) :: Path.t()
  def venv(dir), do: Path.join(dir, ".venv")

  # The Python executable of the venv under `dir`.
  defp python(dir), do: dir |> venv() |> PythonLookup.venv_python()

  ## uv

  defp run_uv!(project, env) do
    uv = uv_executable!(env)
    lock? = File.regular?(Path.join(project.project_dir, "uv.lock"))

    args =
      ["sync", "--project", project.project_dir, "--no-install-project"] ++
        if(lock? and not project.inline?, do: ["--locked"], else: [])

    uv_env = [
      {"UV_PROJECT_ENVIRONMENT", venv(project.build_dir)},
      {"UV_PYTHON_DOWNLOADS", "never"},
      {"VIRTUAL_ENV", nil}
    ]

    message = "Syncing the Python environment of #{project.name} with uv"
    if mix_started?(), do: Mix.shell().info(message), else: IO.puts(:stderr, message)

    case System.cmd(uv, args, env: uv_env, stderr_to_stdout: true, cd: project.project_dir) do
      {_, 0} ->
        :ok

      {output, status} ->
        compile_error!(
          env,
          "uv sync failed (exit status #{status}) for the Python project of " <>
            "#{project.name}:\n" <> String.trim_trailing(output)
        )
    end
  end

  defp uv_executable!(env) do
    case System.get_env("SNEX_UV") do
      nil -> System.find_executable("uv")
      path -> if File.regular?(path), do: path
    end ||
      compile_error!(
        env,
        "uv is needed to build the Python environment of #{inspect(env.module)} but was not " <>
          "found; install it (e.g. `pip install uv`) or set SNEX_UV to its path"
      )
  end

  ## Stamps

  defp inputs_stamp(project) do
    ["pyproject.toml", "uv.lock"]
    |> Enum.map(fn file ->
      case File.read(Path.join(project.project_dir, file)) do
        {:ok, content} -> [file, 0, content, 0]
        {:error, _} -> [file, 1]
      end
    end)
    |> :erlang.md5()
    |> Base.encode16(case: :lower)
  end

  defp read_stamp(project) do
    case File.read(stamp_path(project)) do
      {:ok, stamp} -> stamp
      {:error, _} -> nil
    end
  end

  defp stamp_path(project), do: Path.join(project.build_dir, ".snex-stamp")
  defp pyproject_path(project), do: Path.join(project.project_dir, "pyproject.toml")

  defp write_if_changed!(path, content) do
    unless File.read(path) == {:ok, content}, do: File.write!(path, content)
  end

  defp compile_error!(env, message) do
    raise CompileError, file: env.file, line: env.line, description: message
  end
end
