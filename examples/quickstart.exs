# Quick start: start a Python interpreter, send it data, run code, get the result back.
#
#     mix run examples/quickstart.exs

{:ok, interpreter} = Snex.Interpreter.start_link(init_script: "import statistics")
{:ok, env} = Snex.make_env(interpreter, %{"temperatures" => [21.5, 23.0, 19.8, 25.1, 22.4]})

{:ok, summary} =
  Snex.pyeval(env, """
  return {
      "mean": round(statistics.mean(temperatures), 2),
      "stdev": round(statistics.stdev(temperatures), 2),
      "max": max(temperatures),
  }
  """)

IO.puts("Python computed: #{inspect(summary)}")
