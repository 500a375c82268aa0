"""The trusted side of a checked program: its checks run here, in the evaluator's interpreter, and
reach the candidate only through requests whose arguments and results are plain data.

The sandboxed child runs the candidate's solution and then answers requests (``child/run.py``).
A name the checks use that neither the built-ins, the task's trusted code (MBPP's imports and
setup, HumanEval's prompt with its helpers) nor the checks themselves define is a
:class:`Remote`: calling it sends the arguments to the child as data (:mod:`wire`) and returns the
candidate's result rebuilt from exact built-ins. An object that is not data stays in the sandbox
as a :class:`Remote` too: it can be passed back, called, read and compared with another of the
candidate's objects (by the candidate's own ``==``, as the task's class defines it), but it is
never equal to data and has no truth value. So nothing the candidate can reach (its modules,
built-ins, classes, exit paths) takes part in a verdict.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import select
import time
from typing import Any

from unisd.sandbox.child.wire import WireError, decode, encode

#: the largest message the judge reads from the candidate
MAX_REPLY = 64 << 20
_NOT_RAISED = (SystemExit, KeyboardInterrupt, GeneratorExit)


class CandidateTimeout(Exception):
    """The candidate did not answer before the program's deadline."""


class ChannelClosed(Exception):
    """The candidate's process ended, or wrote something that is not a reply."""


class CandidateError(Exception):
    """An exception of the candidate's own type (its name and message cross as text)."""


class Channel:
    """Requests to the sandboxed child and its replies (one JSON line each)."""

    def __init__(self, call_fd: int, reply_fd: int, deadline: float, nonce: str) -> None:
        self.call_fd, self.reply_fd, self.deadline, self.nonce = call_fd, reply_fd, deadline, nonce
        self.buffer, self.next_id, self.out_of_memory = b"", 0, False

    def _message(self) -> dict:
        while b"\n" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.reply_fd], [], [], left)[0]:
                raise CandidateTimeout("no answer before the deadline")
            chunk = os.read(self.reply_fd, 1 << 16)
            if not chunk:
                raise ChannelClosed("the program's process ended")
            self.buffer += chunk
            if len(self.buffer) > MAX_REPLY:
                raise ChannelClosed(f"a reply over {MAX_REPLY} bytes")
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            message = json.loads(line, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise ChannelClosed("the program wrote something that is not a reply") from None
        if type(message) is not dict:
            raise ChannelClosed("the program wrote something that is not a reply")
        return message

    def ready(self) -> None:
        """Wait until the solution has run to its end: the runner's first line, with the nonce (a line
        the program wrote before it cannot carry the nonce, so it ends the run)."""
        if self._message() != {"ready": self.nonce}:
            raise ChannelClosed("the program wrote something that is not a reply")

    def request(self, op: str, target: dict, **fields: Any) -> Any:
        self.next_id += 1
        line = json.dumps({"id": self.next_id, "op": op, "target": target, **fields}) + "\n"
        data = line.encode()
        try:
            while data:
                data = data[os.write(self.call_fd, data) :]
        except (BrokenPipeError, OSError):
            raise ChannelClosed("the program's process ended") from None
        reply = self._message()
        if reply.get("id") != self.next_id:
            raise ChannelClosed("a reply to another request")
        if "raise" in reply:
            raise _candidate_exception(self, reply.get("raise"), reply.get("msg"))
        if "ok" not in reply:
            raise ChannelClosed("a reply without a value")
        try:
            return decode(reply["ok"], lambda index, name: Remote(self, {"ref": index}, name))
        except (WireError, TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise ChannelClosed(f"a reply that is not data: {exc}") from None

    def send_value(self, value: Any) -> Any:
        """``value`` as wire data: the checks' own data, or a reference to one of the candidate's objects."""

        def other(obj: Any) -> dict:
            if type(obj) is Remote and obj._channel is self and "ref" in obj._target:
                return {"ref": obj._target["ref"], "type": obj._type}
            raise WireError(f"a {type(obj).__name__} cannot be sent to the program")

        return encode(value, other)


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _candidate_exception(channel: Channel, name: Any, msg: Any) -> BaseException:
    name, msg = (name if type(name) is str else "Exception"), (msg if type(msg) is str else "")
    if name == "MemoryError":
        channel.out_of_memory = True
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, BaseException) and not issubclass(kind, _NOT_RAISED):
        return kind(msg)
    return CandidateError(f"{name}: {msg}")


class Remote:
    """A name the program defines, or an object it returned, seen from the checks."""

    __slots__ = ("_channel", "_target", "_type")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, channel: Channel, target: dict, type_name: str) -> None:
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_type", type_name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        send = self._channel.send_value
        return self._channel.request("call", self._target, args=send(list(args)), kwargs=send(list(kwargs.items())))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._channel.request("attr", self._target, name=name)

    def __eq__(self, other: object) -> bool:
        if type(other) is Remote and other._channel is self._channel:
            return self._channel.request("eq", self._target, other=self._channel.send_value(other)) is True
        return False  # the program's object is never equal to data

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __bool__(self) -> bool:
        raise AssertionError(f"a test's truth value came from a {self._type} object of the program")

    def __iter__(self):
        return iter(self._channel.request("list", self._target))

    def __repr__(self) -> str:
        return f"<{self._type} of the program>"


def free_names(source: str) -> set[str]:
    """Names ``source`` reads that it never binds (anywhere: a rough scope-blind over-approximation
    is enough, since only the names also undefined by the trusted code become remote)."""
    loaded: set[str] = set()
    bound: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return loaded - bound


def run_checks(channel: Channel, trusted: str, checks: str, calls: tuple[str, ...] = ()) -> None:
    """Run ``trusted`` then ``checks`` in a fresh namespace of this interpreter, with the names the
    program must provide (``calls``, and what the checks read but nobody here defines) remote."""
    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": "__unisd_checks__"}
    if trusted.strip():
        exec(compile(trusted, "<task code>", "exec", dont_inherit=True), namespace)  # noqa: S102 - the benchmark's own code
    remote = set(calls) | {n for n in free_names(checks) if n not in namespace and not hasattr(builtins, n)}
    for name in sorted(remote):
        namespace[name] = Remote(channel, {"name": name}, name)
    exec(compile(checks, "<checks>", "exec", dont_inherit=True), namespace)  # noqa: S102 - the benchmark's own checks
