defmodule Snex.Serde.Decoder do
  @moduledoc false
  # Turns a body Python sent (a reply, or a `snex.call`/`cast`/`send` request) into a term, in
  # the process that receives it: on its own scheduler when the body is small, on a dirty CPU
  # scheduler when it is large (the NIF decides by size, see `docs/decisions.md`).
  #
  # Atoms: Python may name atoms that do not exist yet. They are created only while the atom
  # table stays below `:max_atom_table_use` (application env of `:snex`, default 0.9) of its
  # limit; a body needing more is a decode error of that call, and existing atoms always work.

  @default_max_atom_table_use 0.9

  @typedoc "A body: the pickle, or the pickle and its out-of-band buffers."
  @type body :: binary() | {binary(), [binary()]}

  @doc "Decodes `body`: `{:ok, term}` or `{:error, message}`."
  @spec decode(body()) :: {:ok, term()} | {:error, String.t()}
  def decode(body) do
    case native(body, nil) do
      :new_atoms ->
        case atom_budget() do
          0 ->
            {:error,
             "the value holds atoms that do not exist, and the atom table is near its limit " <>
               "(#{:erlang.system_info(:atom_count)} of #{:erlang.system_info(:atom_limit)}; " <>
               "Snex creates atoms only below #{trunc(max_atom_table_use() * 100)}%)"}

          budget ->
            native(body, budget)
        end

      other ->
        other
    end
  end

  defp native(body, new_atoms) do
    case Snex.Native.decode_body(body, new_atoms) do
      :dirty -> Snex.Native.decode_body_dirty(body, new_atoms)
      other -> other
    end
  end

  @doc "How many atoms may still be created from Python's values."
  @spec atom_budget() :: non_neg_integer()
  def atom_budget do
    limit = :erlang.system_info(:atom_limit)
    max(trunc(limit * max_atom_table_use()) - :erlang.system_info(:atom_count), 0)
  end

  defp max_atom_table_use,
    do: Application.get_env(:snex, :max_atom_table_use, @default_max_atom_table_use)
end
