defmodule Snex.PythonRoundtripTest do
  use ExUnit.Case, async: true

  @moduletag timeout: 120_000

  # Python → Elixir → Python: random values made in Python cross to Elixir and back, and
  # Python compares them with the originals.
  @generator """
  import random, math

  def gen(rng, depth=0):
      kinds = ["none", "bool", "int", "big", "float", "str", "bytes", "atom", "term"]
      if depth < 4:
          kinds += ["list", "tuple", "dict", "set"]
      k = rng.choice(kinds)
      if k == "none": return None
      if k == "bool": return rng.random() < 0.5
      if k == "int": return rng.randint(-2**40, 2**40)
      if k == "big": return rng.randint(-2**300, 2**300)
      if k == "float": return rng.choice([rng.uniform(-1e9, 1e9), -0.0, 1e-300])
      if k == "str": return "".join(chr(rng.choice([rng.randint(32, 126), 0xE9, 0x4E2D, 0x1F600])) for _ in range(rng.randint(0, 10)))
      if k == "bytes": return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 10)))
      if k == "atom": return snex.Atom(rng.choice(["a", "b", "ok", "error"]))
      if k == "term": return snex.Term(bytes([131, 97, rng.randint(0, 255)]))
      n = rng.randint(0, 5)
      if k == "list": return [gen(rng, depth + 1) for _ in range(n)]
      if k == "tuple": return tuple(gen(rng, depth + 1) for _ in range(n))
      if k == "set": return {rng.randint(0, 100) for _ in range(n)}
      return {f"k{i}": gen(rng, depth + 1) for i in range(n)}

  def norm(x):
      # Binaries have no Python type in Elixir: str and bytes both come back as bytes here
      # (binary_as: :bytes); a Term of a small integer comes back as the integer.
      if isinstance(x, snex.Atom): return ("atom", str(x))
      if isinstance(x, str): return x.encode()
      if isinstance(x, (bytes, bytearray)): return bytes(x)
      if isinstance(x, snex.Term): return ("int", x.etf[2])
      if isinstance(x, float): return ("float", x, math.copysign(1, x))
      if isinstance(x, list): return [norm(v) for v in x]
      if isinstance(x, tuple): return ("tuple", [norm(v) for v in x])
      if isinstance(x, dict): return ("dict", sorted((repr(norm(k)), norm(v)) for k, v in x.items()))
      if isinstance(x, (set, frozenset)): return ("set", sorted(x))
      return (type(x).__name__, x)

  def same(a, b):
      return norm(a) == norm(b)

  rng = random.Random(seed)
  values = [gen(rng) for _ in range(count)]
  """

  test "1,000 random Python values survive Python → Elixir → Python", %{} do
    {:ok, i} = start_supervised({Snex.Interpreter, []})
    {:ok, env} = Snex.make_env(i)
    {:ok, nil} = Snex.pyeval(env, @generator, %{"seed" => 42, "count" => 1000})
    {:ok, values} = Snex.pyeval(env, "return values")
    assert length(values) == 1000

    assert {:ok, []} =
             Snex.pyeval(
               env,
               "return [i for i, (a, b) in enumerate(zip(values, back)) if not same(a, b)]",
               %{"back" => values},
               encoding_opts: [binary_as: :bytes]
             )
  end
end
