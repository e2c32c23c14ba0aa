defmodule Snex.CodeTest do
  use Snex.InterpreterCase, async: true
  import Snex.Sigils

  alias Snex.Error

  test "Snex.Code.wrap" do
    assert %Snex.Code{src: "x", file: "<Snex.Code>", line: 0} = Snex.Code.wrap("x")
    code = %Snex.Code{src: "y", file: "f.py", line: 3}
    assert Snex.Code.wrap(code) == code
  end

  test "~p interpolates and unescapes, ~P does not", %{env: env} do
    n = 41
    assert %Snex.Code{file: file} = ~p"return #{n} + 1"
    assert file == __ENV__.file
    assert {:ok, 42} = Snex.pyeval(env, ~p"return #{n} + 1")
    assert {:ok, "a\tb"} = Snex.pyeval(env, ~p"return 'a\tb'")
    assert {:ok, "a\\tb"} = Snex.pyeval(env, ~P"return r'a\tb'")
    assert ~P"#{n}".src == "\#{n}"
  end

  test "~PY is the raw sigil" do
    {code, _} = Code.eval_string(~S|import Snex.Sigils; sigil_PY(<<"return 1">>, [])|)
    assert %Snex.Code{src: "return 1"} = code
  end

  test "a one-line sigil's traceback names this file and line", %{env: env} do
    line = __ENV__.line + 1
    assert {:error, %Error{traceback: tb}} = Snex.pyeval(env, ~p"raise ValueError('one')")
    assert Enum.join(tb) =~ ~s(File "#{__ENV__.file}", line #{line})
  end

  test "a heredoc raising on its third line points at that line", %{env: env} do
    sigil_line = __ENV__.line + 3

    result =
      Snex.pyeval(env, ~p"""
      x = 1
      y = 2
      raise RuntimeError("third line")
      """)

    assert {:error, %Error{code: :python_runtime_error, reason: "third line", traceback: tb}} =
             result

    text = Enum.join(tb)
    assert text =~ ~s(File "#{__ENV__.file}", line #{sigil_line + 3})
    assert text =~ ~s[raise RuntimeError("third line")]
    refute text =~ "snex/runner"
  end

  test "frames of functions defined in the code show their lines", %{env: env} do
    code = %Snex.Code{
      src: "def f():\n    raise KeyError('k')\n\nf()",
      file: "my_file.py",
      line: 10
    }

    {:error, %Error{traceback: tb}} = Snex.pyeval(env, code)
    text = Enum.join(tb)
    assert text =~ ~s(File "my_file.py", line 11, in f)
    assert text =~ ~s(File "my_file.py", line 13)
  end

  test "compiled code is cached", %{env: env} do
    code = "return 'cached'"
    assert {:ok, "cached"} = Snex.pyeval(env, code)
    {:ok, before} = Snex.pyeval(env, "return snex.code.compile_cache_info()[0]")
    assert {:ok, "cached"} = Snex.pyeval(env, code)
    {:ok, after_} = Snex.pyeval(env, "return snex.code.compile_cache_info()[0]")
    # One hit for the repeated code, one for the first info call.
    assert after_ - before == 2
  end

  test "KeyboardInterrupt and SystemExit are errors of the call", %{env: env} do
    for exc <- ["KeyboardInterrupt()", "SystemExit(2)", "GeneratorExit()"] do
      assert {:error, %Error{code: :python_runtime_error}} = Snex.pyeval(env, "raise " <> exc)
    end

    assert {:ok, 1} = Snex.pyeval(env, "return 1")
  end
end
