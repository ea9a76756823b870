"""The Redis adapter: the one place where Redis's own errors become RedisUnavailable.

`connect` builds every Redis client of the service (records, the call gate, the snapshot, the
sweep lock, `web`'s readiness and metrics, the CLI). Its commands, its pipelines and its Lua
scripts raise RedisUnavailable where redis-py raises RedisError (or lets an OSError through),
so that nothing above this module catches a redis exception. Two of redis-py's errors pass as
they are, being signals rather than failures: NoScriptError inside a script's call (the script
loads itself and calls again; a second miss is translated) and WatchError (an optimistic
transaction lost its race; nothing here uses WATCH).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError, WatchError

from wa_media.core.errors import RedisUnavailable

__all__ = ["TranslatedRedis", "connect", "decoded", "failure_name", "naming_failures"]

# What redis-py raises when Redis fails or cannot be reached: its own errors, and the socket's
# that it does not wrap.
_FAILURES = (RedisError, OSError)


def _unavailable(what: object, error: BaseException) -> RedisUnavailable:
    """A secret-free error: the command's name and the failure's class, never its arguments."""
    name = what.decode() if isinstance(what, bytes) else str(what)
    return RedisUnavailable(f"Redis {name} failed: {type(error).__name__}")


def failure_name(error: BaseException) -> str:
    """The class name of the vendor's failure a translated error stands for (its own class
    name when it translates none): for messages that name how Redis or the broker failed."""
    cause = error.__cause__ or error.__context__
    return type(cause).__name__ if cause is not None else type(error).__name__


def decoded(value: object) -> str:
    """A reply as text: clients made without decode_responses answer bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


@contextmanager
def naming_failures(action: str) -> Iterator[None]:
    """Name what a store was doing when Redis failed (the client names the command)."""
    try:
        yield
    except RedisUnavailable as exc:
        raise RedisUnavailable(f"Redis {action} failed: {failure_name(exc)}") from None


class TranslatedScript(Script):
    """A Lua script whose call raises RedisUnavailable when Redis fails."""

    def __call__(
        self,
        keys: Sequence[Any] | None = None,
        args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:
        try:
            return super().__call__(keys, args, client)
        except NoScriptError as exc:  # missing again after loading it: Redis lost it meanwhile
            raise _unavailable("EVALSHA", exc) from None


class TranslatedPipeline(Pipeline):
    """A pipeline whose execution raises RedisUnavailable when Redis fails."""

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return super().execute(raise_on_error)
        except WatchError:
            raise
        except _FAILURES as exc:
            raise _unavailable("pipeline", exc) from None

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except (WatchError, NoScriptError):
            raise
        except _FAILURES as exc:
            raise _unavailable(args[0] if args else "command", exc) from None


class TranslatedRedis(Redis):
    """A Redis client whose commands, pipelines and scripts raise RedisUnavailable when Redis
    fails; otherwise exactly redis-py's client (hiredis, connection pool, timeouts)."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except NoScriptError:
            raise  # a script's call loads the script and calls again (TranslatedScript)
        except _FAILURES as exc:
            raise _unavailable(args[0] if args else "command", exc) from None

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        return TranslatedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )

    def register_script(self, script: Any) -> Script:
        return TranslatedScript(self, script)


def connect(url: str, **options: Any) -> Redis:
    """A client of the Redis at `url` (options as redis-py's `Redis.from_url` takes them) that
    raises RedisUnavailable, never redis-py's errors."""
    return TranslatedRedis.from_url(url, **options)
