# The NIF is built by a project-local Mix compiler (no hex packages are used).
Code.require_file("mix/compile.snex_native.exs", __DIR__)

defmodule Snex.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :snex,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:snex_native] ++ Mix.compilers(),
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      # Mix is used only at compile time (custom interpreters) and in release steps.
      xref: [exclude: [Mix, Mix.Project, Mix.Release]],
      test_coverage: [ignore_modules: []],
      description: "Python interpreters as supervised OS processes, driven from Elixir",
      docs: [main: "readme", extras: ["README.md", "CHANGELOG.md"]]
    ]
  end

  def application do
    [extra_applications: [:logger], mod: {Snex.Application, []}]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
