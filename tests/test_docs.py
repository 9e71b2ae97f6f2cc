"""Every public object in the ``lever`` package carries a docstring."""

import importlib
import inspect
import pkgutil

import lever


def _is_dispatcher(obj):
    return hasattr(obj, "py_func") and callable(getattr(obj, "py_func"))


def _doc_of(obj):
    if _is_dispatcher(obj):
        return obj.py_func.__doc__
    if isinstance(obj, (staticmethod, classmethod)):
        return obj.__func__.__doc__
    if isinstance(obj, property):
        return obj.fget.__doc__ if obj.fget is not None else obj.__doc__
    return getattr(obj, "__doc__", None)


def _modules():
    yield lever
    for info in pkgutil.walk_packages(lever.__path__, prefix="lever."):
        yield importlib.import_module(info.name)


def _is_member(value):
    return (inspect.isfunction(value) or _is_dispatcher(value)
            or isinstance(value, (property, staticmethod, classmethod)))


def _undocumented():
    offenders = []
    for module in _modules():
        for name, obj in vars(module).items():
            if name.startswith("_"):
                continue
            is_class = inspect.isclass(obj)
            if not (is_class or inspect.isfunction(obj) or _is_dispatcher(obj)):
                continue
            owner = obj.py_func if _is_dispatcher(obj) else obj
            if getattr(owner, "__module__", None) != module.__name__:
                continue
            qualname = f"{module.__name__}.{name}"
            if not (_doc_of(obj) or "").strip():
                offenders.append(qualname)
            if not is_class:
                continue
            for attr, value in vars(obj).items():
                if attr.startswith("_") or not _is_member(value):
                    continue
                if not (_doc_of(value) or "").strip():
                    offenders.append(f"{qualname}.{attr}")
    return sorted(set(offenders))


def test_every_public_object_has_a_docstring():
    offenders = _undocumented()
    assert not offenders, "missing docstrings:\n  " + "\n  ".join(offenders)
