defmodule Snex.Interpreter.PythonLookup do
  @moduledoc false
  # Finds the Python executable of an interpreter and, when it cannot be run, says why: a name
  # not on PATH, a path that does not exist or is not executable, or the Python of a virtual
  # environment whose base Python is gone (a venv made on another machine, or before that Python
  # was removed). Also the minimum Python version and how `python -m snex` refuses an older one.

  @minimum_version "3.10"

  # `python -m snex` exits with this status (EX_CONFIG of sysexits.h) when its Python is older
  # than `minimum_version/0`; python/snex/_python_version.py uses the same number.
  @too_old_status 78

  @doc "The oldest Python version Snex runs on, as text (`\"3.10\"`)."
  @spec minimum_version() :: String.t()
  def minimum_version, do: @minimum_version

  @doc "The exit status of `python -m snex` on a Python older than `minimum_version/0`."
  @spec too_old_status() :: non_neg_integer()
  def too_old_status, do: @too_old_status

  @doc """
  The error for a Python that exited with `too_old_status/0` while starting: names the
  executable and the version needed.
  """
  @spec too_old_error(String.t()) :: Snex.Error.t()
  def too_old_error(program) do
    Snex.Error.new(
      :python_too_old,
      "#{program} is older than Python #{@minimum_version}, which Snex needs (`python -m snex` " <>
        "exited with status #{@too_old_status}; its message, with the version found, is on " <>
        "the standard error of the BEAM). Give a Python >= #{@minimum_version} with the " <>
        ":python option, or put one first on PATH."
    )
  end

  @doc """
  The default Python: `python3`, then `python`, looked up on `PATH`.
  """
  @spec default() :: {:ok, String.t()} | {:error, Snex.Error.t()}
  def default do
    case System.find_executable("python3") || System.find_executable("python") do
      nil ->
        not_found(
          "no python3 or python found on PATH; install Python >= #{@minimum_version} or give " <>
            "its path with the :python option"
        )

      path ->
        {:ok, path}
    end
  end

  @doc """
  Resolves `python` (a name looked up on `PATH`, or a path) to an executable path, or explains
  why it cannot be run.
  """
  @spec resolve(String.t()) :: {:ok, String.t()} | {:error, Snex.Error.t()}
  def resolve(python) do
    if String.contains?(python, "/") do
      check_path(python)
    else
      case System.find_executable(python) do
        nil -> not_found("python executable #{inspect(python)} not found on PATH")
        path -> {:ok, path}
      end
    end
  end

  defp check_path(path) do
    case File.stat(path) do
      {:ok, %{type: :regular, mode: mode}} when Bitwise.band(mode, 0o111) != 0 ->
        {:ok, path}

      {:ok, %{type: :regular}} ->
        not_found("python executable #{path} is not executable")

      {:ok, %{type: type}} ->
        not_found("python executable #{path} is not a file (#{type})")

      {:error, _} ->
        case venv_of(path) do
          nil -> not_found("python executable #{path} does not exist")
          venv -> not_found("#{path} cannot run: " <> broken_venv_reason(venv))
        end
    end
  end

  @doc "The Python executable of the virtual environment `venv`: `<venv>/bin/python`."
  @spec venv_python(Path.t()) :: Path.t()
  def venv_python(venv), do: Path.join([venv, "bin", "python"])

  @doc """
  What the `pyvenv.cfg` of the virtual environment `venv` says: `:home` (the directory of the
  base Python), `:version` (its full version, e.g. `"3.11.7"`) and `:base` (the base Python
  executable, when the venv's `bin/python` is a link to it); nil when `venv` has no
  `pyvenv.cfg`.
  """
  @spec venv_info(Path.t()) ::
          %{home: String.t() | nil, version: String.t() | nil, base: String.t() | nil} | nil
  def venv_info(venv) do
    case File.read(Path.join(venv, "pyvenv.cfg")) do
      {:ok, text} ->
        cfg = parse_cfg(text)

        %{
          home: cfg["home"],
          version: cfg["version_info"] || cfg["version"],
          base: base_python(venv)
        }

      {:error, _} ->
        nil
    end
  end

  @doc """
  Why the Python of the virtual environment `venv` cannot run: names the base Python it needs,
  its version, and what fixes it.
  """
  @spec broken_venv_reason(Path.t()) :: String.t()
  def broken_venv_reason(venv) do
    info = venv_info(venv) || %{home: nil, version: nil, base: nil}
    needed = if info.version, do: "Python #{info.version}", else: "its base Python"

    where =
      cond do
        info.base -> " at #{info.base}"
        info.home -> " in #{info.home}"
        true -> ""
      end

    "the virtual environment #{venv} was made with #{needed}#{where}, which is not there on " <>
      "this machine. Install #{needed}#{where}, or make the environment again on this " <>
      "machine (for a release: build it on a machine or image like the one it runs on)"
  end

  # The venv holding `python` when it is `<venv>/bin/<name>`.
  defp venv_of(python) do
    venv = python |> Path.dirname() |> Path.dirname()
    if File.regular?(Path.join(venv, "pyvenv.cfg")), do: venv
  end

  # The executable `<venv>/bin/python` links to (uv and `python -m venv` make links).
  defp base_python(venv) do
    link = venv_python(venv)

    case File.read_link(link) do
      {:ok, target} -> Path.expand(target, Path.dirname(link))
      {:error, _} -> nil
    end
  end

  defp parse_cfg(text) do
    for line <- String.split(text, "\n"),
        [key, value] <- [String.split(line, "=", parts: 2)],
        into: %{} do
      {String.trim(key), String.trim(value)}
    end
  end

  defp not_found(message), do: {:error, Snex.Error.new(:python_not_found, message)}
end
