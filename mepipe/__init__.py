"""The `mepipe` command line: the one room that knows both the engine (`pipeline`) and
the training module (`training`); neither imports it."""
