# Tests tagged :linux check what only Linux does (vmsplice).
linux_only = if match?({:unix, :linux}, :os.type()), do: [], else: [:linux]
ExUnit.start(capture_log: true, exclude: linux_only)
