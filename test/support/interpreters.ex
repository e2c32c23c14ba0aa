defmodule Snex.Test.NumpyInterpreter do
  @moduledoc false
  # The interpreter of SPEC section 7: numpy synced by uv at compile time.
  use Snex.Interpreter,
    pyproject_toml: """
    [project]
    name = "my-numpy-project"
    version = "0.0.0"
    requires-python = ">=3.10"
    dependencies = ["numpy>=2"]
    """
end

defmodule Snex.Test.ProjectInterpreter do
  @moduledoc false
  # A `project_path` interpreter whose start_link/1 is overridden and calls super/1.
  use Snex.Interpreter, project_path: "test/fixtures/py_project"

  def start_link(opts) do
    opts
    |> Keyword.put_new(:init_script, "import greeting")
    |> super()
  end
end
