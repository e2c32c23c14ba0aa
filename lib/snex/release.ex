defmodule Snex.Release do
  @moduledoc """
  Puts the Python environments of custom interpreters into a release.

  Add `after_assemble/1` as a step after `:assemble` in the release's config:

      def project do
        [
          # ...
          releases: [
            my_app: [steps: [:assemble, &Snex.Release.after_assemble/1]]
          ]
        ]
      end

  For every module of the release's applications that is an interpreter with a Python project
  (`use Snex.Interpreter, pyproject_toml: ...` or `project_path: ...`), and for those only, the
  step copies the module's virtual environment (and, for `project_path`, the project's files
  without hidden directories and `__pycache__`) into `priv/snex/<Module>/` of the module's
  application in the release. At run time the interpreter uses that copy, so the release needs
  no `uv` and runs from any directory it is moved to.

  The step verifies what it copied: the same files as the build's environment, and the copied
  Python starts from its new place and finds the same packages. It prints the Python version
  the release needs.

  A virtual environment points at the Python it was made from: the machine that runs the
  release needs the same CPython at the same path as the machine that built it (build the
  release on the image it runs on). If it is not there, or if the release was built without
  this step, the interpreter's `start_link/1` returns
  `{:error, %Snex.Error{code: :python_not_found}}` with a message that names the path, the
  Python version needed and the fix.
  """

  alias Snex.Interpreter.Project

  @doc "The release step: copies the interpreters' environments into `release`."
  @spec after_assemble(Mix.Release.t()) :: Mix.Release.t()
  def after_assemble(%{applications: applications, path: path} = release) do
    for {app, properties} <- applications,
        module <- Keyword.get(properties, :modules, []),
        project = project_of(module) do
      priv = Path.join([path, "lib", "#{app}-#{properties[:vsn]}", "priv"])
      dest = Path.join(priv, Project.release_subdir(project))
      copy_project!(project, dest)
    end

    release
  end

  defp project_of(module) do
    if Code.ensure_loaded?(module) and function_exported?(module, :__snex_interpreter__, 0) do
      module.__snex_interpreter__()
    end
  end

  defp copy_project!(%Project{} = project, dest) do
    venv = Project.venv(project.build_dir)

    unless File.dir?(venv) do
      Mix.raise(
        "the Python environment of #{project.name} is missing (#{venv}); compile the project first"
      )
    end

    File.rm_rf!(dest)
    File.mkdir_p!(dest)
    File.cp_r!(venv, Project.venv(dest))
    verify_tree!(project, venv, Project.venv(dest), fn _ -> true end)

    unless project.inline? do
      sources = Path.join(dest, "project")
      copy_sources!(project.project_dir, sources)
      verify_tree!(project, project.project_dir, sources, &source_entry?/1)
    end

    %{version: version, packages: packages} = verify_python!(project, venv, Project.venv(dest))
    base = if project.python_base, do: " at #{project.python_base}", else: ""
    packages = if packages == [], do: "no packages", else: Enum.join(packages, ", ")

    Mix.shell().info([
      :green,
      "* snex ",
      :reset,
      "copied the Python environment of #{project.name} (#{packages}) and checked it runs; " <>
        "where the release runs it needs Python #{version}#{base}"
    ])
  end

  # The project's files, without hidden entries (.venv, .git, ...) and __pycache__.
  defp copy_sources!(src, dest) do
    File.mkdir_p!(dest)

    for entry <- File.ls!(src), source_entry?(entry) do
      from = Path.join(src, entry)
      to = Path.join(dest, entry)

      if File.dir?(from) and not symlink?(from),
        do: copy_sources!(from, to),
        else: File.cp_r!(from, to)
    end
  end

  defp source_entry?(entry), do: not String.starts_with?(entry, ".") and entry != "__pycache__"

  defp symlink?(path), do: match?({:ok, %{type: :symlink}}, File.lstat(path))

  ## Verification

  # The copy has the same entries as the original: the same files with the same sizes, the same
  # links with the same targets.
  defp verify_tree!(project, src, dest, keep?) do
    expected = tree(src, keep?)
    copied = tree(dest, keep?)

    if expected != copied do
      missing = Enum.take(expected -- copied, 5)
      extra = Enum.take(copied -- expected, 5)

      Mix.raise(
        "the copy of #{src} for #{project.name} in the release (#{dest}) differs from it: " <>
          "missing or different #{inspect(missing)}, unexpected #{inspect(extra)}"
      )
    end
  end

  defp tree(dir, keep?, rel \\ "") do
    dir
    |> Path.join(rel)
    |> File.ls!()
    |> Enum.filter(keep?)
    |> Enum.sort()
    |> Enum.flat_map(fn entry ->
      rel = if rel == "", do: entry, else: Path.join(rel, entry)
      path = Path.join(dir, rel)

      case File.lstat!(path) do
        %{type: :directory} -> [{rel, :directory} | tree(dir, keep?, rel)]
        %{type: :symlink} -> [{rel, {:symlink, File.read_link!(path)}}]
        %{type: type, size: size} -> [{rel, {type, size}}]
      end
    end)
  end

  # Runs the copied venv's Python: it must start, see itself as the copy (`sys.prefix`), and
  # find the same distributions as the original.
  @probe """
  import importlib.metadata as m, sys
  print("%d.%d.%d" % sys.version_info[:3])
  print(sys.prefix)
  print(",".join(sorted(str(d.metadata["Name"]).lower() for d in m.distributions())))
  """

  defp verify_python!(project, src, dest) do
    %{packages: expected} = probe!(project, src, "the original")
    copied = probe!(project, dest, "the copy")

    cond do
      Path.expand(copied.prefix) != Path.expand(dest) ->
        Mix.raise(
          "the copied Python environment of #{project.name} (#{dest}) runs as #{copied.prefix}"
        )

      copied.packages != expected ->
        Mix.raise(
          "the copied Python environment of #{project.name} (#{dest}) has the packages " <>
            "#{inspect(copied.packages)}, the original #{inspect(expected)}"
        )

      true ->
        copied
    end
  end

  defp probe!(project, venv, which) do
    python = Snex.Interpreter.PythonLookup.venv_python(venv)

    case run_probe(python) do
      {:ok, output} ->
        [version, prefix, packages] = output |> String.split("\n", parts: 3)

        %{
          version: version,
          prefix: prefix,
          packages: packages |> String.trim() |> String.split(",", trim: true)
        }

      {:error, why} ->
        Mix.raise(
          "#{which} of the Python environment of #{project.name} (#{venv}) does not run: " <> why
        )
    end
  end

  defp run_probe(python) do
    case System.cmd(python, ["-I", "-c", @probe], stderr_to_stdout: true) do
      {output, 0} -> {:ok, output}
      {output, status} -> {:error, "exit status #{status}\n" <> output}
    end
  rescue
    # The executable cannot be started at all (e.g. a link to a Python that is not there).
    error in ErlangError -> {:error, Exception.message(error)}
  end
end
