"""One error tree, translated at the edges: every error class of the product is defined in
wa_media/core/errors.py (and drawn in its docstring), and vendors' exceptions are caught only
by the adapters that call the vendor (read from the source, nothing imported)."""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import wa_media.core.errors as errors_module

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("wa_media", "webhook", "worker")
ERRORS = "wa_media/core/errors.py"

# The packages whose exceptions only their adapters may catch.
VENDORS = frozenset(
    {"redis", "kombu", "amqp", "celery", "billiard", "botocore", "boto3", "requests", "urllib3"}
)
# Module (or package, ending in /) -> the vendors it is the adapter of.
ADAPTERS: dict[str, frozenset[str]] = {
    "wa_media/stores/redis_client.py": frozenset({"redis"}),
    "wa_media/stores/s3.py": frozenset({"botocore", "boto3"}),
    # Publishes travel over kombu's Redis transport: its errors are the broker's.
    "wa_media/stores/broker.py": frozenset({"kombu", "amqp", "redis"}),
    "wa_media/providers/": frozenset({"requests", "urllib3"}),
    # A delivery's POST to a relay destination or event endpoint.
    "wa_media/stores/delivery_http.py": frozenset({"requests", "urllib3"}),
    # The simulator is its own HTTP client: it calls `web` and tells how the call failed.
    "wa_media/cli/simulate.py": frozenset({"requests"}),
    # Celery's signal to a running task that its time is up, not a failure of a service.
    "worker/archive.py": frozenset({"billiard"}),
}
# Exception classes that may live outside errors.py: how the CLI presents an error (click).
PRESENTATION = {("wa_media/cli/common.py", "ConfigurationError")}


def modules() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            yield name, ast.parse(path.read_text(encoding="utf-8"), filename=name)


def dotted(module: str) -> str:
    return module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def vendor_names(
    tree: ast.Module, constants: dict[str, dict[str, str]] | None = None
) -> dict[str, str]:
    """The names a module binds to a vendor's modules or objects -> the vendor: imported from
    the vendor, or a module's constant that names them (`NETWORK_ERRORS = (...)`), here or in
    the module it is imported from (`constants`: module -> its vendor constants)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                vendor = alias.name.partition(".")[0]
                if vendor in VENDORS:
                    names[(alias.asname or alias.name).partition(".")[0]] = vendor
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            vendor = node.module.partition(".")[0]
            if vendor in VENDORS:
                for alias in node.names:
                    names[alias.asname or alias.name] = vendor
            for alias in node.names:
                vendor_constant = (constants or {}).get(node.module, {}).get(alias.name)
                if vendor_constant is not None:
                    names[alias.asname or alias.name] = vendor_constant
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            used = [
                names[n.id]
                for n in ast.walk(node.value)
                if isinstance(n, ast.Name) and n.id in names
            ]
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if used and isinstance(target, ast.Name):
                    names[target.id] = used[0]
    return names


def vendor_constants() -> dict[str, dict[str, str]]:
    """Module -> its module-level constants that name vendors' classes -> the vendor."""
    found: dict[str, dict[str, str]] = {}
    for module, tree in modules():
        bound = vendor_names(tree)
        assigned = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        constants = {name: bound[name] for name in assigned & bound.keys()}
        if constants:
            found[dotted(module)] = constants
    return found


def root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def caught(tree: ast.Module) -> Iterator[tuple[int, ast.expr]]:
    """(line, expression) of every class an `except` clause or a `suppress(...)` names."""
    for node in ast.walk(tree):
        kinds: list[ast.expr] = []
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            kinds = list(node.type.elts) if isinstance(node.type, ast.Tuple) else [node.type]
        elif isinstance(node, ast.Call) and root_name(node.func) in ("suppress", "contextlib"):
            kinds = list(node.args)
        for kind in kinds:
            yield node.lineno, kind.value if isinstance(kind, ast.Starred) else kind


def allowed(module: str, vendor: str) -> bool:
    return any(
        vendor in vendors
        and (module == place or (place.endswith("/") and module.startswith(place)))
        for place, vendors in ADAPTERS.items()
    )


def test_only_adapters_catch_vendor_exceptions() -> None:
    found, seen = [], set()
    constants = vendor_constants()
    for module, tree in modules():
        vendors = vendor_names(tree, constants)
        for line, kind in caught(tree):
            vendor = vendors.get(root_name(kind) or "")
            if vendor is not None:
                seen.add((module, vendor))
                if not allowed(module, vendor):
                    found.append(f"{module}:{line}: catches {ast.unparse(kind)} ({vendor})")
    assert found == []
    # The scan sees the adapters' own catches, through constants too (NETWORK_ERRORS).
    assert {
        ("wa_media/stores/redis_client.py", "redis"),
        ("wa_media/stores/s3.py", "botocore"),
        ("wa_media/stores/broker.py", "kombu"),
        ("wa_media/providers/apiclient.py", "requests"),
    } <= seen


def test_the_scan_sees_vendor_catches() -> None:
    source = """
import requests
from redis.exceptions import RedisError as Failed
from contextlib import suppress
try:
    pass
except (ValueError, Failed):
    pass
except requests.exceptions.Timeout:
    pass
with suppress(Failed):
    pass
FAILURES = (Failed, OSError)
try:
    pass
except (*FAILURES, KeyError):
    pass
"""
    tree = ast.parse(source)
    vendors = vendor_names(tree)
    named = [vendors.get(root_name(kind) or "") for _, kind in caught(tree)]
    assert sorted(filter(None, named)) == ["redis", "redis", "redis", "requests"]
    assert not allowed("worker/tasks.py", "redis")
    assert allowed("wa_media/providers/apiclient.py", "requests")
    assert not allowed("wa_media/providers/apiclient.py", "redis")


def resolve(module: str, tree: ast.Module, name: str, local: dict[str, ast.ClassDef]) -> object:
    """What a base class's name stands for, without importing the product's processes."""
    if name in local:
        return local[name]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return getattr(importlib.import_module(node.module), alias.name, None)
    return getattr(builtins, name, None)


def is_exception(
    module: str, tree: ast.Module, cls: ast.ClassDef, local: dict[str, ast.ClassDef]
) -> bool:
    for base in cls.bases:
        if isinstance(base, ast.Name):
            target = resolve(module, tree, base.id, local)
        elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
            holder = resolve(module, tree, base.value.id, local)
            if holder is None:
                for node in tree.body:
                    if isinstance(node, ast.Import):
                        for alias in node.names:
                            if (alias.asname or alias.name) == base.value.id:
                                holder = importlib.import_module(alias.name)
            target = getattr(holder, base.attr, None)
        else:
            continue
        if isinstance(target, ast.ClassDef):
            if is_exception(module, tree, target, local):
                return True
        elif isinstance(target, type) and issubclass(target, BaseException):
            return True
        elif target is None and re.search(r"(Error|Exception)$", ast.unparse(base)):
            return True  # unresolved, but named like one: counted, to be safe
    return False


def exception_classes() -> Iterator[tuple[str, str]]:
    for module, tree in modules():
        local = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
        for cls in local.values():
            if is_exception(module, tree, cls, local):
                yield module, cls.name


def test_every_error_class_is_in_the_tree() -> None:
    classes = set(exception_classes())
    assert ("wa_media/core/errors.py", "RedisUnavailable") in classes  # the scan sees them
    elsewhere = sorted(
        f"{module}: {name}" for module, name in classes - PRESENTATION if module != ERRORS
    )
    assert elsewhere == []


def test_the_docstring_draws_every_class() -> None:
    defined = {
        name
        for name, value in vars(errors_module).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == errors_module.__name__
    }
    doc = errors_module.__doc__ or ""
    assert defined == set(errors_module.__all__)
    assert sorted(name for name in defined if not re.search(rf"\b{name}\b", doc)) == []
    drawn = set(re.findall(r"^[│ ├└─]*([A-Z]\w+)\s{2,}", doc, re.MULTILINE))
    drawn |= {"ArchiveError"}
    assert drawn - defined == set()


def test_the_tree_has_its_shape() -> None:
    from wa_media.core import errors

    assert issubclass(errors.RedisUnavailable, errors.StorageError)
    assert issubclass(errors.BrokerUnavailable, errors.RetryableError)
    assert issubclass(errors.PausedError, errors.CredentialsError)
    # Parsers that meet a bad id take it as the ValueError it always was.
    assert issubclass(errors.InvalidId, errors.PermanentError)
    assert issubclass(errors.InvalidId, ValueError)
    assert issubclass(errors.NotWhatsAppPayload, ValueError)
    assert issubclass(errors.MissingSignature, errors.SignatureError)
    assert issubclass(errors.InvalidSignature, errors.SignatureError)
