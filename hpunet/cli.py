# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Runs a command's `main`: user errors in one line, bugs with a traceback.

  if __name__ == "__main__":
    cli.run(main, _define_flags)

- Flag problems (an unknown flag, `--config=configs/nope.py`, a
  `--config.foo=1` override of a field the config does not have, a config
  file that raises) are one line on stderr and exit code 2, before `main`.
- `errors.UserError` (bad input) is one line and exit code 2; a non-finite
  loss (`FloatingPointError`) exit code 3; a failed checkpoint write
  (`errors.CheckpointSaveError`) exit code 4; Ctrl-C that reaches here
  (a second one during training) exit code 130. `main` may return an exit
  code itself (the trainer returns `errors.PREEMPTED`, 75, after a
  preemption checkpoint).
- Any other exception is a bug: its traceback is printed (exit code 1).
  `--verbose` prints tracebacks for the one-line errors too.

`execute(main, f, argv, flag_values)` does the same in-process and returns
the exit code (what the tests call). The exit codes are listed in
`hpunet/errors.py` and the README.
"""

from collections.abc import Callable, Sequence
import sys
import traceback
import types

from absl import flags

from hpunet import errors

Main = Callable[[Sequence[str], types.SimpleNamespace], int | None]
DefineFlags = Callable[[flags.FlagValues], types.SimpleNamespace]

_VERBOSE = "verbose"


def _report(message: str, *, verbose: bool) -> None:
  if verbose:
    traceback.print_exc()
  first, *rest = str(message).strip().splitlines() or [""]
  # One line: multi-line library messages are joined.
  line = " ".join([first] + [r.strip() for r in rest if r.strip()])
  print(f"Error: {line}", file=sys.stderr, flush=True)


def _without_traceback(message: str) -> str:
  """'flag --x: ... Traceback ... ValueError: why' -> 'flag --x: why'."""
  if "Traceback (most recent call last)" not in message:
    return message
  head = message.split("Traceback (most recent call last)")[0].strip()
  lines = [l.strip() for l in message.strip().splitlines() if l.strip()]
  last = lines[-1] if lines else ""
  if ": " in last and last.split(": ", 1)[0].isidentifier():
    last = last.split(": ", 1)[1]
  head = head.removesuffix("Error whilst parsing config file:").strip()
  return f"{head} {last}".strip()


def _arg_of(argv: Sequence[str], prefix: str) -> str:
  for arg in argv:
    if arg.startswith(prefix):
      return arg
  return prefix


def parse(flag_values: flags.FlagValues, argv: Sequence[str]) -> list[str]:
  """Parses `argv` and loads the config flags; raises one-line UserErrors."""
  argv = list(argv)
  try:
    rest = flag_values(argv)
  except flags.Error as e:
    raise errors.UserError(_without_traceback(str(e))) from None
  except (AttributeError, KeyError) as e:  # --config.<missing field>=...
    key = str(e).strip("'\"")
    bad = [a for a in argv if a.startswith("--") and "." in a.split("=")[0]
           and key in a.split("=")[0]]
    arg = bad[0] if bad else f"--...{key}"
    raise errors.UserError(
        f"{arg}: the config has no field {key!r} (check the spelling "
        "against the config file).") from None
  except (TypeError, ValueError) as e:  # --config.field=<wrong type>
    raise errors.UserError(str(e)) from None
  for name in list(flag_values):  # config files load lazily: load them now
    try:
      value = flag_values[name].value
      # A config that failed to load is a proxy that raises on first use.
      getattr(value, "to_json_best_effort", None)
    except Exception as e:  # pylint: disable=broad-except
      arg = _arg_of(argv, f"--{name}=")
      cause = e.__cause__ or e.__context__ or e
      if isinstance(cause, (FileNotFoundError,)) or (
          "No such file" in str(e)):
        raise errors.UserError(
            f"{arg}: no such config file (expected configs/<name>.py"
            "[:<variant>], e.g. configs/synthetic.py:smoke).") from None
      detail = str(cause).strip().splitlines()
      raise errors.UserError(
          f"{arg}: the config file failed to load: "
          f"{detail[0] if detail else type(cause).__name__}") from None
  return rest


def _call(main: Main, argv: Sequence[str], f: types.SimpleNamespace,
          verbose: bool) -> int:
  from absl import app  # pylint: disable=g-import-not-at-top
  try:
    code = main(argv, f)
    return errors.OK if code is None else int(code)
  except (errors.UserError, app.UsageError) as e:
    _report(str(e), verbose=verbose)
    return errors.USER_ERROR
  except FloatingPointError as e:
    _report(str(e), verbose=verbose)
    return errors.NON_FINITE
  except errors.CheckpointSaveError as e:
    _report(str(e), verbose=verbose)
    return errors.SAVE_FAILED
  except KeyboardInterrupt:
    _report("Interrupted (a second Ctrl-C): stopped at once, no new "
            "checkpoint; rerun the same command to resume from the last "
            "one.", verbose=verbose)
    return errors.INTERRUPTED


def _define_verbose(flag_values: flags.FlagValues) -> None:
  if _VERBOSE not in flag_values:
    flags.DEFINE_bool(_VERBOSE, False, "Print tracebacks for user errors too.",
                      flag_values=flag_values)


def execute(main: Main, f: types.SimpleNamespace, argv: Sequence[str],
            flag_values: flags.FlagValues) -> int:
  """Parses `argv` into `flag_values` and runs `main`; returns the exit code.

  `f` holds the command's flags, defined on `flag_values`.
  """
  _define_verbose(flag_values)
  # ml_collections reads `--config.x` overrides from sys.argv.
  saved, sys.argv = sys.argv, list(argv)
  try:
    rest = parse(flag_values, argv)
  except errors.UserError as e:
    _report(str(e), verbose=False)
    return errors.USER_ERROR
  finally:
    sys.argv = saved
  return _call(main, rest, f, bool(flag_values[_VERBOSE].value))


def run(main: Main, define_flags: DefineFlags) -> None:
  """A command's `__main__`: absl's app.run with one-line user errors."""
  from absl import app  # pylint: disable=g-import-not-at-top
  flag_values = flags.FLAGS
  f = define_flags(flag_values)
  _define_verbose(flag_values)

  def parser(argv: list[str]) -> list[str]:
    try:
      return parse(flag_values, argv)
    except errors.UserError as e:
      _report(str(e), verbose="--verbose" in argv)
      sys.exit(errors.USER_ERROR)

  def wrapped(argv: Sequence[str]) -> int:
    return _call(main, argv, f, bool(flag_values[_VERBOSE].value))

  app.run(wrapped, flags_parser=parser)

