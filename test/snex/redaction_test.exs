defmodule Snex.RedactionTest do
  use ExUnit.Case, async: true
  import ExUnit.CaptureLog

  alias Snex.Interpreter.Options
  alias Snex.Test.LogForwarder

  @secrets ["env-secret-1", "var-secret-2", "code-secret-3", "cmd-secret-4"]

  @doc false
  # A :wrap_exec running Python through `env`, with a secret on the command line.
  def wrap(secret, python, args), do: {"env", ["SNEX_WRAPPED=#{secret}", python | args]}

  defp secret_opts do
    [
      environment: %{"API_KEY" => "env-secret-1"},
      init_script:
        {"token_len = len(token)\nlabel = 'code-secret-3'", %{"token" => "var-secret-2"}},
      wrap_exec: {__MODULE__, :wrap, ["cmd-secret-4"]}
    ]
  end

  defp refute_secrets(text) do
    for secret <- @secrets, do: refute(text =~ secret, "#{secret} leaked into: #{text}")
  end

  test "the crash report of an interpreter whose Python exits shows no secret" do
    {:ok, i} = start_supervised({Snex.Interpreter, [restart: :temporary] ++ secret_opts()})

    # The options as given are what Python got.
    assert {:ok, ["env-secret-1", 12, "cmd-secret-4"]} =
             Snex.pyeval(i, """
             import os
             return [os.environ['API_KEY'], token_len, os.environ['SNEX_WRAPPED']]
             """)

    LogForwarder.attach()
    ref = Process.monitor(i)

    log =
      capture_log(fn ->
        assert {:error, %Snex.Error{code: :call_failed}} =
                 Snex.pyeval(i, "import os\nos._exit(3)")

        assert_receive {:DOWN, ^ref, :process, ^i, %Snex.Error{code: :interpreter_exited}}
        LogForwarder.await([~r/interpreter_exited/])
      end)

    # The report is there, with the state (names and non-secret options included).
    assert log =~ "terminating"
    assert log =~ "interpreter_exited"
    assert log =~ ~s("API_KEY" => :redacted)
    assert log =~ ~s("token" => :redacted)
    assert log =~ "max_concurrent_callbacks: 1000"
    refute_secrets(log)
  end

  test ":sys.get_status/1 shows no secret" do
    {:ok, i} = start_supervised({Snex.Interpreter, secret_opts()})
    status = inspect(:sys.get_status(i), limit: :infinity, printable_limit: :infinity)

    assert status =~ ~s("API_KEY" => :redacted)
    assert status =~ ~s(init_script: {:redacted, %{"token" => :redacted}})
    assert status =~ ~s(wrap_exec: {Snex.RedactionTest, :wrap, [:redacted]})

    assert status =~
             ~r/command: \{:ok, \{"[^"]*env", \[:redacted, :redacted, :redacted, :redacted\]\}\}/

    refute_secrets(status)

    # The interpreter itself still has them.
    assert %{options: %Options{environment: %{"API_KEY" => "env-secret-1"}}} = :sys.get_state(i)
  end

  test "format_status/2 (older OTP) and a reason or message holding the options" do
    {:ok, i} = start_supervised({Snex.Interpreter, secret_opts()})
    state = :sys.get_state(i)

    formatted = [
      Snex.Interpreter.format_status(:terminate, [[], state]),
      Snex.Interpreter.format_status(:normal, [[], state]),
      Snex.Interpreter.format_status(%{
        state: state,
        reason: {:bad, [state.options | :improper], [[], ["traceback"]]},
        message: {:oops, %{deep: {state.options}}, [state.options]},
        log: []
      })
    ]

    text = inspect(formatted, limit: :infinity, printable_limit: :infinity)
    assert text =~ ~s("API_KEY" => :redacted)
    assert text =~ ~s(| :improper], [[], ["traceback"]]})
    refute_secrets(text)
  end

  test "Options.redact/1 keeps what is not secret" do
    {options, []} = Options.split!(python: "python3", cd: "/tmp", label: :x, init_script: "x = 1")
    redacted = Options.redact(options)
    assert %Options{python: "python3", cd: "/tmp", label: :x, init_script: :redacted} = redacted
    assert %Options{init_script: nil} = Options.redact(%{options | init_script: nil})
  end
end
