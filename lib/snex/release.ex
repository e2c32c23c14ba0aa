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

  A virtual environment points at the Python it was made from: the machine that runs the
  release needs the same CPython at the same path as the machine that built it (build the
  release on the image it runs on).
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

    unless project.inline? do
      copy_sources!(project.project_dir, Path.join(dest, "project"))
    end

    Mix.shell().info([
      :green,
      "* snex ",
      :reset,
      "copied the Python environment of #{project.name}"
    ])
  end

  # The project's files, without hidden entries (.venv, .git, ...) and __pycache__.
  defp copy_sources!(src, dest) do
    File.mkdir_p!(dest)

    for entry <- File.ls!(src), not String.starts_with?(entry, "."), entry != "__pycache__" do
      from = Path.join(src, entry)
      to = Path.join(dest, entry)

      if File.dir?(from) and not symlink?(from),
        do: copy_sources!(from, to),
        else: File.cp_r!(from, to)
    end
  end

  defp symlink?(path), do: match?({:ok, %{type: :symlink}}, File.lstat(path))
end
