defmodule Snex.Native do
  @moduledoc false
  # NIF stubs; the implementation is `native/snex_nif`. Requests are submitted with `submit/1`
  # (normal scheduler), `submit_dirty/1` (dirty CPU) or `submit_serial/1` (dirty I/O, waits for
  # the caller's turn with `parallelism: false`); `Snex.Request` decides which.
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

  def submit(_request), do: :erlang.nif_error(:nif_not_loaded)
  def submit_dirty(_request), do: :erlang.nif_error(:nif_not_loaded)
  def submit_serial(_request), do: :erlang.nif_error(:nif_not_loaded)
end
