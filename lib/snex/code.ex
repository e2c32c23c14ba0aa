defmodule Snex.Code do
  @moduledoc """
  Python source with the place it comes from, so that tracebacks point at the right file and
  line. `Snex.Sigils` builds these from Elixir source files.

  `line` is the line of `file` on which `src` starts; `0` (the default) means "not from a file".
  """

  @type t :: %__MODULE__{src: iodata(), file: String.t(), line: non_neg_integer()}

  defstruct src: "", file: "<Snex.Code>", line: 0

  @doc "Wraps a string (or iodata) into a `Snex.Code`; a `Snex.Code` is returned as it is."
  @spec wrap(t() | iodata()) :: t()
  def wrap(%__MODULE__{} = code), do: code
  def wrap(src) when is_binary(src) or is_list(src), do: %__MODULE__{src: src}

  @doc false
  # What a request sends of `code` (anything `wrap/1` takes): the source as one binary, the file
  # name as a string, the line.
  @spec parts(t() | iodata()) :: {String.t(), String.t(), non_neg_integer()}
  def parts(code) do
    %__MODULE__{src: src, file: file, line: line} = wrap(code)
    {IO.iodata_to_binary(src), to_string(file), line}
  end
end
