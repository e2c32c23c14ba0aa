defmodule Snex.Test.Wrappers do
  @moduledoc false
  # `wrap_exec` wrappers used by the tests.

  @doc "Runs Python through `/usr/bin/env`, with the variables `vars` (a map) set."
  def env(vars, python, args) do
    assignments = Enum.map(vars, fn {key, value} -> "#{key}=#{value}" end)
    {"/usr/bin/env", assignments ++ [python | args]}
  end
end
