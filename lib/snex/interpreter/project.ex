defmodule Snex.Interpreter.Project do
  @moduledoc false
  # The Python project of a custom interpreter module (`use Snex.Interpreter, pyproject_toml:
  # ...` or `project_path: ...`).
  #
  # At compile time `uv sync` builds the module's virtual environment in
  # `_build/$MIX_ENV/snex/<Module>/.venv` from the project's dependencies (the project itself is
  # not installed: a `project_path` project's own modules are imported from its directory, which
  # becomes Python's working directory). At run time the venv is looked up first in the owning
  # application's `priv/snex/<Module>/`, where `Snex.Release` puts it in a release, then in the
  # build directory.

  @enforce_keys [:module, :app, :name, :build_dir, :project_dir, :inline?]
  defstruct [:module, :app, :name, :build_dir, :project_dir, :inline?, stamp: nil]

  @type t :: %__MODULE__{
          module: module(),
          app: atom() | nil,
          name: String.t(),
          build_dir: Path.t(),
          project_dir: Path.t(),
          inline?: boolean(),
          stamp: String.t() | nil
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
        build_dir = build_dir!(module, env)
        new(module, build_dir, build_dir, true)

      {:error, {:ok, path}} when is_binary(path) ->
        project_dir = Path.expand(path)

        unless File.regular?(Path.join(project_dir, "pyproject.toml")) do
          compile_error!(env, "project_path #{inspect(path)} has no pyproject.toml")
        end

        new(module, build_dir!(module, env), project_dir, false)

      _ ->
        compile_error!(env, ":pyproject_toml and :project_path must be strings")
    end
  end

  defp new(module, build_dir, project_dir, inline?) do
    %__MODULE__{
      module: module,
      app: Mix.Project.config()[:app],
      name: inspect(module),
      build_dir: build_dir,
      project_dir: project_dir,
      inline?: inline?
    }
  end

  defp build_dir!(module, env) do
    unless Code.ensure_loaded?(Mix.Project) and Mix.Project.get() != nil do
      compile_error!(env, "use Snex.Interpreter with a Python project needs a Mix project")
    end

    Path.join([Mix.Project.build_path(), "snex", inspect(module)])
  end

  # Creates or updates the virtual environment with `uv sync`, unless nothing changed since the
  # last sync. Returns the project with its stamp.
  defp sync!(%__MODULE__{} = project, toml, env) do
    File.mkdir_p!(project.build_dir)
    if project.inline?, do: write_if_changed!(pyproject_path(project), toml)
    stamp = inputs_stamp(project)

    if stamp == read_stamp(project) and File.exists?(python(project.build_dir)) do
      %{project | stamp: stamp}
    else
      run_uv!(project, env)
      stamp = inputs_stamp(project)
      File.write!(stamp_path(project), stamp)
      %{project | stamp: stamp}
    end
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
  """
  @spec start_opts(t() | nil, module(), keyword()) :: keyword()
  def start_opts(nil, module, opts), do: Keyword.put_new(opts, :label, module)

  def start_opts(%__MODULE__{} = project, _module, opts) do
    {venv_root, project_dir} = runtime_dirs(project)
    venv = venv(venv_root)

    venv_env = %{
      "VIRTUAL_ENV" => venv,
      "PATH" => Enum.join([Path.join(venv, "bin"), System.get_env("PATH", "")], ":")
    }

    opts
    |> Keyword.put_new(:python, python(venv_root))
    |> Keyword.put_new(:label, project.module)
    |> put_new_cd(project_dir)
    |> Keyword.update(:environment, venv_env, &merge_environment(venv_env, &1))
  end

  # An invalid :environment is left for Snex.Interpreter's validation to report.
  defp merge_environment(venv_env, given) when is_map(given), do: Map.merge(venv_env, given)
  defp merge_environment(_venv_env, given), do: given

  defp put_new_cd(opts, nil), do: opts
  defp put_new_cd(opts, dir), do: Keyword.put_new(opts, :cd, dir)

  # {directory holding .venv, working directory or nil}, for the release or the build.
  defp runtime_dirs(project) do
    released = released_dir(project)

    cond do
      released && File.dir?(released) ->
        {released, if(project.inline?, do: nil, else: Path.join(released, "project"))}

      project.inline? ->
        {project.build_dir, nil}

      true ->
        {project.build_dir, project.project_dir}
    end
  end

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
  defp python(dir), do: Path.join([venv(dir), "bin", "python"])

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

    if Code.ensure_loaded?(Mix) and Mix.shell() do
      Mix.shell().info("Syncing the Python environment of #{project.name} with uv")
    end

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
