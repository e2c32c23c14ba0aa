defmodule Snex.Native do
  @moduledoc false
  # NIF stubs; the implementation is `native/snex_nif`. Functions without the `_dirty` suffix
  # run on normal schedulers within a time budget and return `:dirty` when the work is too big,
  # then the caller repeats the call with the `_dirty` twin (see `Snex.Request`). With
  # `parallelism: false`, both return `:locked` when another caller is submitting to the same
  # interpreter; the `_serial` twin (dirty I/O scheduler) then waits for its turn.
  @on_load :load_nif

  def load_nif do
    path = :filename.join(:code.priv_dir(:snex), ~c"native/libsnex_nif")
    :erlang.load_nif(path, 0)
  end

  def start(_opts), do: :erlang.nif_error(:nif_not_loaded)
  def set_mapset_template(_empty), do: :erlang.nif_error(:nif_not_loaded)
  def decode_body(_body, _new_atoms), do: :erlang.nif_error(:nif_not_loaded)
  def decode_body_dirty(_body, _new_atoms), do: :erlang.nif_error(:nif_not_loaded)
  def os_pid(_interpreter), do: :erlang.nif_error(:nif_not_loaded)
  def stats(_interpreter), do: :erlang.nif_error(:nif_not_loaded)
  def shutdown(_interpreter), do: :erlang.nif_error(:nif_not_loaded)
  def cancel(_interpreter, _id), do: :erlang.nif_error(:nif_not_loaded)
  def forget_waiter(_target), do: :erlang.nif_error(:nif_not_loaded)
  def destroy_env(_target, _env_id), do: :erlang.nif_error(:nif_not_loaded)
  def is_env(_term), do: :erlang.nif_error(:nif_not_loaded)
  def disable_gc(_env), do: :erlang.nif_error(:nif_not_loaded)

  def eval(_target, _env_id, _tag, _code, _file, _line, _vars, _opts),
    do: :erlang.nif_error(:nif_not_loaded)

  def eval_dirty(_target, _env_id, _tag, _code, _file, _line, _vars, _opts),
    do: :erlang.nif_error(:nif_not_loaded)

  def eval_serial(_target, _env_id, _tag, _code, _file, _line, _vars, _opts),
    do: :erlang.nif_error(:nif_not_loaded)

  def make_env(_interpreter, _tag, _sources, _vars, _opts), do: :erlang.nif_error(:nif_not_loaded)

  def make_env_dirty(_interpreter, _tag, _sources, _vars, _opts),
    do: :erlang.nif_error(:nif_not_loaded)

  def make_env_serial(_interpreter, _tag, _sources, _vars, _opts),
    do: :erlang.nif_error(:nif_not_loaded)

  def call_result(_interpreter, _id, _ok, _value, _opts), do: :erlang.nif_error(:nif_not_loaded)

  def call_result_dirty(_interpreter, _id, _ok, _value, _opts),
    do: :erlang.nif_error(:nif_not_loaded)

  def call_result_serial(_interpreter, _id, _ok, _value, _opts),
    do: :erlang.nif_error(:nif_not_loaded)
end
