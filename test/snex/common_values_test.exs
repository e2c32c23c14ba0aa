defmodule Snex.CommonValuesTest do
  # Common Python values that are not built-in types (numbers registered with the `numbers`
  # ABCs, numpy scalars, `decimal.Decimal`, the `datetime` types), the calendar structs sent
  # from Elixir, and encode errors that say where the offending value is (SPEC section 4).
  use Snex.InterpreterCase, async: true

  alias Snex.Error

  @registered_numbers """
  import numbers

  class Count:
      def __init__(self, n): self.n = n
      def __int__(self): return self.n

  class Ratio:
      def __init__(self, x): self.x = x
      def __float__(self): return self.x
      def __eq__(self, other): return other == self.x
      __hash__ = None

  numbers.Integral.register(Count)
  numbers.Real.register(Ratio)
  """

  # A time zone like zoneinfo.ZoneInfo("Europe/Warsaw") in summer, without a time zone database.
  @warsaw_summer """
  import datetime as dt

  class Warsaw(dt.tzinfo):
      key = "Europe/Warsaw"
      def utcoffset(self, d): return dt.timedelta(hours=2)
      def dst(self, d): return dt.timedelta(hours=1)
      def tzname(self, d): return "CEST"
  """

  @warsaw %DateTime{
    year: 2024,
    month: 7,
    day: 1,
    hour: 12,
    minute: 30,
    second: 5,
    microsecond: {0, 0},
    time_zone: "Europe/Warsaw",
    zone_abbr: "CEST",
    utc_offset: 3600,
    std_offset: 3600
  }

  defp roundtrip(env, value, opts \\ []),
    do: Snex.pyeval(env, "return v", %{"v" => value}, encoding_opts: opts)

  defp python_repr(env, value),
    do: Snex.pyeval(env, "import datetime, zoneinfo\nreturn repr(v)", %{"v" => value})

  describe "numbers registered with numbers.Integral / numbers.Real (no numpy)" do
    test "become integers and floats, as values and as keys", %{env: env} do
      assert {:ok, [3, big, 0.25, %{7 => 0.5}, 0.5]} =
               Snex.pyeval(
                 env,
                 @registered_numbers <>
                   """
                   from fractions import Fraction
                   return [Count(3), Count(2**70), Ratio(0.25), {Count(7): Fraction(1, 2)},
                           Fraction(1, 2)]
                   """
               )

      assert big === 2 ** 70
    end

    test "a Real that is not exactly a float is an error, not a rounded float", %{env: env} do
      assert {:error, %Error{code: :encode_error, reason: reason}} =
               Snex.pyeval(env, "from fractions import Fraction\nreturn [1, Fraction(1, 3)]")

      assert reason ==
               "Cannot serialize object of fractions.Fraction at result[1]: " <>
                 "Fraction(1, 3) is not exactly a float; convert it yourself " <>
                 "(float(x), or str(x) for an exact text)"
    end
  end

  describe "numpy scalars" do
    setup do
      {:ok, numpy} =
        start_supervised({Snex.Test.NumpyInterpreter, init_script: "import numpy as np"})

      {:ok, numpy: numpy}
    end

    test "integers, floats and bools of every width", %{numpy: numpy} do
      assert {:ok, values} =
               Snex.pyeval(numpy, """
               return [np.int8(-128), np.int16(-3), np.int32(2**31 - 1), np.int64(-2**63),
                       np.uint8(255), np.uint64(2**64 - 1), np.intp(5),
                       np.float16(1.5), np.float32(0.1), np.float64(2.5), np.float32("inf"),
                       np.float32("nan"), np.bool_(True), np.False_,
                       {np.int64(1): np.True_}]
               """)

      assert values == [
               -128,
               -3,
               2 ** 31 - 1,
               -(2 ** 63),
               255,
               2 ** 64 - 1,
               5,
               1.5,
               # float32(0.1), exactly
               0.10000000149011612,
               2.5,
               :inf,
               :nan,
               true,
               false,
               %{1 => true}
             ]

      ints = Enum.take(values, 7)
      assert Enum.all?(ints, &is_integer/1)
    end

    test "are encoded without Snex importing numpy" do
      # A NumpyInterpreter whose code never imports numpy: encoding numbers must not either.
      {:ok, i} = start_supervised(Snex.Test.NumpyInterpreter, id: :no_numpy_import)

      assert {:ok, [3, 0.25, false]} =
               Snex.pyeval(
                 i,
                 @registered_numbers <>
                   """
                   import sys
                   snex.codec.encode([Count(3), Ratio(0.25)])
                   try:
                       snex.codec.encode(object())
                   except snex.EncodeError:
                       pass
                   return [Count(3), Ratio(0.25), "numpy" in sys.modules]
                   """
               )
    end

    test "arrays of numbers are their bytes", %{numpy: numpy} do
      assert {:ok, %{"rows" => [<<0, 1, 2>>, <<1.5::float-little, 2.5::float-little>>]}} =
               Snex.pyeval(
                 numpy,
                 "return {'rows': [np.arange(3, dtype=np.uint8), np.array([1.5, 2.5])]}"
               )
    end

    test "other arrays and numpy values hint at the fix", %{numpy: numpy} do
      assert {:error, %Error{code: :encode_error, reason: reason}} =
               Snex.pyeval(numpy, "return {'rows': [np.array([1, None])]}")

      assert reason ==
               "Cannot serialize object of numpy.ndarray at result['rows'][0]: only arrays " <>
                 "of numbers become binaries: convert it with .tolist()"

      assert {:ok, [[0, 1, 2], <<0, 1>>]} =
               Snex.pyeval(
                 numpy,
                 "a = np.arange(2, dtype=np.uint8)\nreturn [np.arange(3).tolist(), a.tobytes()]"
               )

      assert {:error, %Error{reason: reason}} =
               Snex.pyeval(numpy, "return [np.datetime64('2024-01-02')]")

      assert reason =~ "numpy.datetime64 at result[0]: convert it to a Python value with .item()"

      assert {:ok, [~D[2024-01-02]]} =
               Snex.pyeval(numpy, "return [np.datetime64('2024-01-02').item()]")

      assert {:error, %Error{reason: reason}} = Snex.pyeval(numpy, "return np.complex64(1)")
      assert reason =~ "at result: Elixir has no complex numbers; send (z.real, z.imag)"
    end
  end

  test "decimal.Decimal becomes its exact string", %{env: env} do
    assert {:ok,
            [
              "1.10",
              "-0",
              "1E+3",
              "NaN",
              "-Infinity",
              "0.1000000000000000055511151231257827021181583404541015625"
            ]} =
             Snex.pyeval(env, """
             from decimal import Decimal
             return [Decimal("1.10"), Decimal("-0"), Decimal("1E+3"), Decimal("NaN"),
                     Decimal("-Infinity"), Decimal(0.1)]
             """)
  end

  describe "datetime values to Elixir" do
    test "date, time and naive datetime", %{env: env} do
      assert {:ok, values} =
               Snex.pyeval(env, """
               import datetime as dt
               return [dt.date(2024, 2, 29), dt.time(23, 59, 58), dt.time(1, 2, 3, 4),
                       dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)]
               """)

      assert values == [
               ~D[2024-02-29],
               ~T[23:59:58],
               ~T[01:02:03.000004],
               ~N[0001-01-01 00:00:00],
               ~N[9999-12-31 23:59:59.999999]
             ]

      # Python keeps microseconds: precision 6, or none (0) when they are 0 (as isoformat()).
      assert [_, {0, 0}, {4, 6}, {0, 0}, {999_999, 6}] =
               Enum.map(values, &Map.get(&1, :microsecond))
    end

    test "aware datetimes: UTC, a zone with a key, other offsets as UTC", %{env: env} do
      assert {:ok, [utc, utc_key, zoned, fixed]} =
               Snex.pyeval(
                 env,
                 @warsaw_summer <>
                   """
                   class UtcKey(dt.tzinfo):
                       key = "UTC"
                       def utcoffset(self, d): return dt.timedelta(0)
                       def dst(self, d): return dt.timedelta(0)
                       def tzname(self, d): return "UTC"
                   plus_2 = dt.timezone(dt.timedelta(hours=2, minutes=30))
                   return [dt.datetime(2024, 7, 1, 12, 30, 5, tzinfo=dt.timezone.utc),
                           dt.datetime(2024, 7, 1, 12, 30, 5, tzinfo=UtcKey()),
                           dt.datetime(2024, 7, 1, 12, 30, 5, tzinfo=Warsaw()),
                           dt.datetime(2024, 7, 1, 1, 30, 5, 7, tzinfo=plus_2)]
                   """
               )

      assert utc == ~U[2024-07-01 12:30:05Z]
      assert utc_key == ~U[2024-07-01 12:30:05Z]
      assert zoned == @warsaw
      # A fixed offset is converted to UTC, as DateTime.from_iso8601/1 does: the same instant.
      assert fixed == ~U[2024-06-30 23:00:05.000007Z]
    end

    test "a zoneinfo.ZoneInfo keeps its zone", %{env: env} do
      # Needs Python's time zone database; without it, ZoneInfo itself raises in Python.
      assert {:ok, %DateTime{} = dt} =
               Snex.pyeval(env, """
               import datetime as dt, zoneinfo
               return dt.datetime(2024, 7, 1, 12, 30, 5, tzinfo=zoneinfo.ZoneInfo("Europe/Warsaw"))
               """)

      assert dt == @warsaw
    end

    test "an aware time has no Elixir counterpart: an error with the fix", %{env: env} do
      assert {:error, %Error{code: :encode_error, reason: reason}} =
               Snex.pyeval(env, """
               import datetime as dt
               return {"at": dt.time(12, tzinfo=dt.timezone.utc)}
               """)

      assert reason ==
               "Cannot serialize an aware datetime.time (12:00:00+00:00) at result['at']: " <>
                 "Elixir's Time has no time zone; drop it with .replace(tzinfo=None), or " <>
                 "send a datetime"
    end
  end

  describe "calendar structs to Python and back" do
    test "Date, Time, NaiveDateTime and DateTime in UTC", %{env: env} do
      values = [
        ~D[2024-02-29],
        ~T[23:59:58],
        ~T[01:02:03.000004],
        ~N[0001-01-01 00:00:00],
        ~N[9999-12-31 23:59:59.999999],
        ~U[2024-07-01 12:30:05.123456Z]
      ]

      assert {:ok,
              [
                "datetime.date(2024, 2, 29)",
                "datetime.time(23, 59, 58)",
                "datetime.time(1, 2, 3, 4)",
                "datetime.datetime(1, 1, 1, 0, 0)",
                "datetime.datetime(9999, 12, 31, 23, 59, 59, 999999)",
                "datetime.datetime(2024, 7, 1, 12, 30, 5, 123456, tzinfo=datetime.timezone.utc)"
              ]} = Snex.pyeval(env, "return [repr(x) for x in v]", %{"v" => values})

      assert {:ok, ^values} = roundtrip(env, values)
      # Whatever binary_as says (the zone names are str), and as map keys.
      assert {:ok, ^values} = roundtrip(env, values, binary_as: :bytes)
      map = Map.new(values, &{&1, true})
      assert {:ok, ^map} = roundtrip(env, map)
    end

    test "the microsecond precision is not kept: Python has none", %{env: env} do
      assert {:ok, %Time{microsecond: {123_000, 6}} = t} = roundtrip(env, ~T[12:00:00.123])
      assert Time.compare(t, ~T[12:00:00.123]) == :eq
      assert {:ok, ~N[2024-01-01 00:00:00]} = roundtrip(env, ~N[2024-01-01 00:00:00.000])
    end

    test "a DateTime in a zone: a ZoneInfo in Python when it knows the zone", %{env: env} do
      assert {:ok, repr} = python_repr(env, @warsaw)

      assert repr ==
               "datetime.datetime(2024, 7, 1, 12, 30, 5, " <>
                 "tzinfo=zoneinfo.ZoneInfo(key='Europe/Warsaw'))"

      assert {:ok, @warsaw} = roundtrip(env, @warsaw)

      # The ambiguous hour of the end of summer time: the offsets pick the right one (fold).
      winter = %{@warsaw | month: 10, day: 27, hour: 2, zone_abbr: "CET", std_offset: 0}
      summer = %{winter | zone_abbr: "CEST", std_offset: 3600}

      assert {:ok, [1, 0]} =
               Snex.pyeval(env, "return [v[0].fold, v[1].fold]", %{"v" => [winter, summer]})

      assert {:ok, [^winter, ^summer]} = roundtrip(env, [winter, summer])
    end

    test "a zone Python does not know: a fixed offset named by the abbreviation", %{env: env} do
      mars = %{@warsaw | time_zone: "Mars/Olympus_Mons", zone_abbr: "OMT", std_offset: 0}

      assert {:ok, repr} = python_repr(env, mars)

      assert repr ==
               "datetime.datetime(2024, 7, 1, 12, 30, 5, " <>
                 "tzinfo=datetime.timezone(datetime.timedelta(seconds=3600), 'OMT'))"

      # Back in Elixir at UTC: the same instant.
      assert {:ok, ~U[2024-07-01 11:30:05Z] = back} = roundtrip(env, mars)
      assert DateTime.compare(back, mars) == :eq
    end

    test "an Encoder implementation is not asked about them", %{env: env} do
      # test/support implements Snex.Serde.Encoder for Time.
      money = %Snex.Test.Money{cents: 150, currency: "EUR"}
      values = [~T[12:00:00], [money, ~T[12:00:00]]]

      assert {:ok, ["time", ["Decimal", "time"]]} =
               Snex.pyeval(
                 env,
                 "return [type(v[0]).__name__, [type(x).__name__ for x in v[1]]]",
                 %{"v" => values}
               )

      other = %{~T[12:00:00] | calendar: Snex.Test.OtherCalendar}
      assert {:ok, "the Encoder of Time"} = roundtrip(env, other)
    end

    test "other calendars travel as plain structs", %{env: env} do
      other = %{~D[2024-01-02] | calendar: Snex.Test.OtherCalendar}
      assert {:ok, "dict"} = Snex.pyeval(env, "return type(v).__name__", %{"v" => other})
      assert {:ok, ^other} = roundtrip(env, other)
    end

    test "malformed structs and dates Python cannot hold are errors of that call", %{env: env} do
      malformed = %{~D[2024-01-02] | year: "2024"}

      assert {:error, %Error{code: :encode_error, reason: "malformed Date struct"}} =
               roundtrip(env, malformed)

      assert {:error, %Error{code: :encode_error}} =
               roundtrip(env, %{~U[2024-01-02 00:00:00Z] | microsecond: 5})

      assert {:error, %Error{code: :encode_error, reason: reason}} =
               roundtrip(env, ~D[2024-01-02] |> Map.put(:year, 10_000))

      assert reason == "cannot build the Python values: year 10000 is out of range"
      assert {:ok, 1} = Snex.pyeval(env, "return 1")
    end
  end

  describe "encode errors name the path of the offending value" do
    test "a forgotten await", %{env: env} do
      assert {:error, %Error{code: :encode_error, reason: reason}} =
               Snex.pyeval(env, """
               import asyncio, warnings
               warnings.simplefilter("ignore", RuntimeWarning)
               async def rows():
                   return []
               return [1, 2, 3, {"rows": [rows()]}]
               """)

      assert reason ==
               "Cannot serialize object of coroutine at result[3]['rows'][0]: " <>
                 "did you forget `await`?"
    end

    test "paths through keys, sets, subclasses and odd keys", %{env: env} do
      cases = [
        {"{(1, 2): [object()]}", "list(result.values())[0][0]"},
        {"{(1, object()): 2}", "list(result)[0][1]"},
        {"{snex.Atom('a'): {7: {b'k': object()}}}", "result['a'][7][b'k']"},
        {"[frozenset([object()])]", "list(result[0])[0]"},
        {"collections.OrderedDict(x=(object(),))", "result['x'][0]"},
        {"{'k' * 50: object()}", "list(result.values())[0]"}
      ]

      for {expr, path} <- cases do
        assert {:error, %Error{code: :encode_error, reason: reason}} =
                 Snex.pyeval(env, "import collections\nreturn " <> expr)

        assert reason == "Cannot serialize object of object at " <> path, expr
      end
    end

    test "what the custom encoder makes, and what it raises", %{env: env} do
      code = """
      class Box:
          def __init__(self, inner): self.inner = inner
      snex.set_custom_encoder(lambda o: {"inner": o.inner} if isinstance(o, Box) else o.missing)
      """

      assert {:error, %Error{reason: reason}} =
               Snex.pyeval(env, code <> "return [Box([1, Box(object())])]")

      assert reason ==
               "Cannot serialize value at result[0]['inner'][1]['inner']: " <>
                 "AttributeError: 'object' object has no attribute 'missing'"

      assert {:ok, nil} = Snex.pyeval(env, "snex.set_custom_encoder(None)")
    end

    test "in the data of snex.send and the arguments of snex.call", %{env: env} do
      assert {:error, %Error{code: :python_runtime_error, reason: reason}} =
               Snex.pyeval(env, "await snex.send(me, {'x': [object()]})", %{"me" => self()})

      assert reason == "Cannot serialize object of object at data['x'][0]"

      assert {:error, %Error{code: :python_runtime_error, reason: reason}} =
               Snex.pyeval(env, "await snex.call('Elixir.Kernel', 'is_nil', [object()])")

      assert reason == "Cannot serialize object of object at args[0]"
    end
  end
end
