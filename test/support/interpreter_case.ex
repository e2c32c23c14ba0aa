defmodule Snex.InterpreterCase do
  @moduledoc false
  # The usual setup of a test module: one interpreter for the whole module (`interpreter` in
  # the context), and a fresh environment in it for each test (`env`).
  use ExUnit.CaseTemplate

  setup_all do
    {:ok, interpreter} = start_supervised({Snex.Interpreter, []})
    {:ok, interpreter: interpreter}
  end

  setup %{interpreter: interpreter} do
    {:ok, env} = Snex.make_env(interpreter)
    {:ok, env: env}
  end
end
