# Quick start: an interpreter with numpy (synced by uv when this module is compiled), data sent
# from Elixir, a call back into Elixir from Python, and a numpy result back in Elixir.
#
#     mix run examples/quickstart.exs

defmodule MyApp.NumpyInterpreter do
  use Snex.Interpreter,
    pyproject_toml: """
    [project]
    name = "my-numpy-project"
    version = "0.0.0"
    requires-python = ">=3.10"
    dependencies = ["numpy>=2"]
    """
end

{:ok, interpreter} = MyApp.NumpyInterpreter.start_link(init_script: "import numpy as np")

{:ok, env} =
  Snex.make_env(interpreter, %{
    "celsius" => [21.5, 23.0, 19.8, 25.1, 22.4],
    "to_fahrenheit" => fn c -> c * 9 / 5 + 32 end
  })

{:ok, summary} =
  Snex.pyeval(env, """
  # Python asks Elixir to convert every reading, with the Elixir function it was given.
  fahrenheit = np.array(await Elixir.Enum.map(celsius, to_fahrenheit))
  return {
      "numpy": np.__version__,
      "mean_f": round(float(fahrenheit.mean()), 2),
      "std_f": round(float(fahrenheit.std()), 2),
      "warmest_f": float(fahrenheit.max()),
  }
  """)

IO.puts("numpy computed from Elixir's data: #{inspect(summary)}")
