"""Layer code as people write it, adapted to the checker's ``forward(*inputs)`` / ``backward(dout)``.

:func:`adapt` takes the user's code as it is and gives an :class:`Adapted` layer that
:func:`~handlayers.testing.check` runs like a built-in one. The conventions:

- **a class** with ``forward(*inputs)`` and ``backward(dout)`` (the contract's own);
- **a pair of functions** ``(NAME_forward, NAME_backward)``: ``forward(*inputs) -> (out, cache)``,
  ``backward(dout, cache) -> gradients`` (CS231n); for a reference of several outputs, each
  before the cache and each gradient before it (``lstm_step_forward -> (next_h, next_c, cache)``,
  ``lstm_step_backward(dnext_h, dnext_c, cache)``), or all in one tuple. A trailing ``*_param`` argument
  (``conv_param``, ``pool_param``, ``bn_param``, ``dropout_param``) gets the reference's keywords
  under that style's names (:data:`PARAM_KEYS`), with ``mode = "train"``;
- **a loss function returning its gradient**, ``loss(*inputs) -> (loss, dfirst)``: compared at
  ``dout = 1``, the first input's gradient only;
- **parameters and gradients as attributes**: ``params`` (inputs set as attributes, not passed to
  forward), ``init`` (constructor arguments: an input, or ``INPUT.AXIS`` for a size), ``grads``
  (gradients read from attributes after backward), ``output`` (forward's result read from an
  attribute), ``forward`` (the method that computes the output, when it is not ``forward``: the
  nnfs book's ``Loss.calculate``, the mean of the per-row losses ``forward`` returns),
  ``no_grad`` (inputs the code gives no gradient for), ``backward_args`` (what backward is called
  with: ``dout``, an input's name, ``@ATTR``);
- **a loss layer that starts backpropagation**: a ``backward`` callable with no argument is called
  so, and compared at ``dout = 1``;
- :class:`Method`: a method of an instance built for each example, taken as a function above;
- **a jax function** (``jax.custom_vjp``, ``jax.custom_jvp``, or a ``jax.jit``-compiled
  function): its ``jax.vjp``, once eagerly and once under ``jax.jit`` (:meth:`Adapted.variants`).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["PARAM_KEYS", "Adapted", "ConventionError", "Method", "Miscount", "adapt"]

#: the reference's keyword -> the keys of a CS231n-style parameter dict (``pool_param``, ...)
PARAM_KEYS: dict[str, tuple[str, ...]] = {
    "size": ("pool_height", "pool_width"),
    "stride": ("stride",),
    "pad": ("pad",),
    "eps": ("eps",),
    "p": ("p",),
}


class ConventionError(ValueError):
    """The options given do not fit the code (the command line exits 2 with this message)."""


@dataclass(frozen=True)
class Method:
    """``CLASS.METHOD``: the method ``name`` of an instance of ``cls``, built for each example
    (with the adapter's ``init`` arguments, or none), taken as a function."""

    cls: type
    name: str


@dataclass(frozen=True)
class Miscount:
    """What a backward returned when it is not the number of gradients expected."""

    returned: int
    expected: tuple[str, ...]

    def __str__(self) -> str:
        names = ", ".join(self.expected)
        return f"backward returned {self.returned} gradients, expected {len(self.expected)} ({names})"


@dataclass(frozen=True)
class Adapted:
    """User code adapted to the layer protocol: ``Adapted(**kwargs)`` makes a layer whose
    ``backward`` returns one gradient per reference input (``None`` where not compared).

    Attributes:
        name: how reports name the code.
        compared: the positions of the reference's inputs whose gradients are compared.
        unit_dout: the code takes no ``dout`` (a loss starting backpropagation): compare at 1.
        library: ``"jax"`` where the code computes in jax whatever it is given, else ``None``.
    """

    code: Any
    kind: str  # "class", "pair", "loss", "jax"
    name: str
    args: tuple[str, ...]
    labels: tuple[int, ...] = ()
    params: Mapping[str, tuple[str, bool]] = field(default_factory=dict)
    init: tuple[str, ...] = ()
    grads: Mapping[str, str] = field(default_factory=dict)
    output: str | None = None
    no_grad: frozenset[str] = frozenset()
    backward_args: tuple[str, ...] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)  # the reference's keyword defaults
    jit: bool = False
    compared: tuple[int, ...] = ()
    unit_dout: bool = False
    library: str | None = None
    forward: str = "forward"  # the method that computes the output (a class's)
    setup: tuple[str, ...] = ()  # methods called on each new object before forward (a class's)
    outputs: tuple[str, ...] = ("output",)  # the reference's outputs (a pair's forward returns each)

    @property
    def __name__(self) -> str:  # reports name a layer by its __name__
        return f"jax.jit({self.name})" if self.jit else self.name

    def __call__(self, **kwargs: Any) -> Any:
        if self.kind == "jax":
            return _JaxLayer(self, kwargs)
        if self.kind in ("pair", "loss"):
            return _FunctionLayer(self, kwargs)
        return _ClassLayer(self, kwargs)

    def variants(self) -> list[Adapted]:
        """The ways to run the code: a jax function eagerly and under ``jax.jit``, else itself."""
        return [self, dataclasses.replace(self, jit=True)] if self.kind == "jax" else [self]

    def returned(self) -> tuple[int, ...]:
        """The positions whose gradients backward's return value holds, in order."""
        if self.kind == "loss":
            return (0,)
        return tuple(i for i, a in enumerate(self.args) if a not in self.grads and a not in self.no_grad)

    def gradients(self, returned: Any, read: Callable[[str], Any]) -> tuple[Any, ...] | Miscount:
        """One gradient per reference input from what backward ``returned`` and the attributes
        (``read(attr)``); a :class:`Miscount` where the number returned is not the one expected."""
        full: list[Any] = [None] * len(self.args)
        positions = self.returned()
        values = _as_list(returned, len(positions))
        if len(values) != len(positions):  # integer labels may go without their None
            unlabelled = tuple(i for i in positions if i not in self.labels)
            if len(_as_list(returned, len(unlabelled))) == len(unlabelled):
                positions, values = unlabelled, _as_list(returned, len(unlabelled))
            else:
                return Miscount(len(values), tuple("d" + self.args[i] for i in positions))
        for i, value in zip(positions, values, strict=True):
            full[i] = value
        for arg, attr in self.grads.items():
            full[self.args.index(arg)] = self._from_row(arg, read(attr))
        return tuple(full)

    def _from_row(self, arg: str, value: Any) -> Any:
        row = self.params.get(arg, ("", False))[1]
        if row and np.ndim(value) == 2 and np.shape(value)[0] == 1:
            return value[0]
        return value


def _as_list(returned: Any, expected: int) -> list[Any]:
    if expected == 0 and returned is None:
        return []
    return list(returned) if isinstance(returned, tuple | list) else [returned]


# ---------------------------------------------------------------------------------------------
# The layers the checker runs


class _ClassLayer:
    """A class in the contract's convention or with parameters and gradients as attributes."""

    def __init__(self, adapted: Adapted, kwargs: dict[str, Any]) -> None:
        self.adapted, self.kwargs = adapted, kwargs

    def forward(self, *inputs: Any) -> Any:
        a = self.adapted
        self.named = dict(zip(a.args, inputs, strict=True))
        self.obj = a.code(
            *(_init_value(arg, self.named) for arg in a.init), **keywords_for(a.code, a.defaults, self.kwargs)
        )
        for arg, (attr, row) in a.params.items():
            value = self.named[arg]
            setattr(self.obj, attr, value.reshape(1, -1) if row else value)
        for method in a.setup:
            getattr(self.obj, method)()
        passed = [x for name, x in self.named.items() if name not in a.params and name not in a.init]
        out = getattr(self.obj, a.forward)(*passed)
        return getattr(self.obj, a.output) if a.output else out

    def backward(self, dout: Any) -> Any:
        a = self.adapted
        if a.backward_args is None:
            returned = self.obj.backward() if a.unit_dout else self.obj.backward(dout)
        else:
            returned = self.obj.backward(*(self._backward_arg(arg, dout) for arg in a.backward_args))
        return a.gradients(returned, lambda attr: getattr(self.obj, attr))

    def _backward_arg(self, arg: str, dout: Any) -> Any:
        if arg == "dout":
            return dout
        return getattr(self.obj, arg[1:]) if arg.startswith("@") else self.named[arg]


class _FunctionLayer:
    """A CS231n pair ``(forward, backward)`` or a loss function returning ``(loss, dfirst)``."""

    def __init__(self, adapted: Adapted, kwargs: dict[str, Any]) -> None:
        self.adapted, self.kwargs = adapted, kwargs

    def _function(self, function: Any, named: dict[str, Any]) -> Any:
        if isinstance(function, Method):
            instance = function.cls(*(_init_value(arg, named) for arg in self.adapted.init))
            return getattr(instance, function.name)
        return function

    def forward(self, *inputs: Any) -> Any:
        a = self.adapted
        named = dict(zip(a.args, inputs, strict=True))
        code = a.code[0] if a.kind == "pair" else a.code
        function = self._function(code, named)
        passed = [x for name, x in named.items() if name not in a.init]
        if _takes_param_dict(function):
            out = function(*passed, _param_dict({**a.defaults, **self.kwargs}))
        else:
            out = function(*passed, **keywords_for(function, a.defaults, self.kwargs))
        several = a.kind == "pair" and len(a.outputs) > 1
        # several outputs: each in turn before the cache (CS231n's lstm_step: h, c, cache), or all
        # in one tuple; backward takes them alike (dnext_h, dnext_c, cache)
        self.spread = several and isinstance(out, tuple | list) and len(out) == len(a.outputs) + 1
        if self.spread:
            *result, self.stored = out
            return tuple(result)
        if not _a_pair(out, len(a.outputs) if several else None):
            shown = ", ".join(a.outputs)
            what = f"({shown}, cache) or (({shown}), cache)" if several else "the pair (out, cache)"
            what = "the pair (loss, dfirst)" if a.kind == "loss" else what
            raise ConventionError(f"{a.name} returned {type(out).__name__}, not {what}")
        result, self.stored = out
        return result

    def backward(self, dout: Any) -> Any:
        a = self.adapted
        if a.kind == "loss":
            returned = self.stored
        else:
            returned = a.code[1](*dout, self.stored) if self.spread else a.code[1](dout, self.stored)
        return a.gradients(returned, lambda attr: None)


def _a_pair(out: Any, outputs: int | None) -> bool:
    """Whether ``out`` is a pair; for ``outputs`` outputs, of them all and the cache (``((h, c),
    cache)``, not ``(h, c)``: the cache forgotten)."""
    if not isinstance(out, tuple | list) or len(out) != 2:
        return False
    return outputs is None or (isinstance(out[0], tuple | list) and len(out[0]) == outputs)


class _JaxLayer:
    """A jax function: ``jax.vjp`` of it, eagerly or under ``jax.jit``."""

    def __init__(self, adapted: Adapted, kwargs: dict[str, Any]) -> None:
        self.adapted, self.kwargs = adapted, kwargs

    def _split(self, inputs: Sequence[Any]) -> tuple[list[Any], Callable[..., Any]]:
        a = self.adapted
        kwargs = keywords_for(a.code, a.defaults, self.kwargs)
        labels = {i: jnp.asarray(x) for i, x in enumerate(inputs) if i in a.labels}
        floats_ = [jnp.asarray(x) for i, x in enumerate(inputs) if i not in a.labels]

        def f(*xs: Any) -> Any:
            it = iter(xs)
            return a.code(*(labels[i] if i in labels else next(it) for i in range(len(inputs))), **kwargs)

        return floats_, f

    def forward(self, *inputs: Any) -> Any:
        self.inputs = inputs
        floats_, f = self._split(inputs)
        return (jax.jit(f) if self.adapted.jit else f)(*floats_)

    def backward(self, dout: Any) -> Any:
        floats_, f = self._split(self.inputs)

        def vjp(xs: list[Any], d: Any) -> Any:
            return jax.vjp(f, *xs)[1](d)

        grads = iter((jax.jit(vjp) if self.adapted.jit else vjp)(floats_, jnp.asarray(dout)))
        return tuple(None if i in self.adapted.labels else next(grads) for i in range(len(self.inputs)))


def _init_value(arg: str, named: dict[str, Any]) -> Any:
    name, _, axis = arg.partition(".")
    return np.shape(named[name])[int(axis)] if axis else named[name]


def keywords_for(function: Any, defaults: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The example's keywords, and the reference's ``defaults`` (its keywords', see
    :func:`keyword_defaults`) of those ``function`` requires, by a name it can take them by: an
    example that draws none of them still calls the code as it calls the reference."""
    parameters = getattr(signature(function), "parameters", {})
    by_name = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    required = {
        k: v
        for k, v in defaults.items()
        if k in parameters and parameters[k].default is inspect.Parameter.empty and parameters[k].kind in by_name
    }
    return {**required, **kwargs}


def _takes_param_dict(function: Any) -> bool:
    """Whether the function's last argument is a ``*_param`` dict (``conv_param``)."""
    parameters = list(getattr(signature(function), "parameters", ()))
    return bool(parameters) and parameters[-1].endswith("_param")


def signature(function: Any) -> inspect.Signature | None:
    """``function``'s signature, or ``None`` where Python cannot read one (``max``, some C functions)."""
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


def binds(function: Any, *args: Any, **kwargs: Any) -> bool:
    """Whether ``function`` takes these arguments; ``True`` where its signature cannot be read."""
    found = signature(function)
    if found is None:
        return True
    try:
        found.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def _param_dict(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The reference's keywords under the names of a CS231n parameter dict, with ``mode = "train"``."""
    style = {"mode": "train"}
    for key, value in kwargs.items():
        for name in PARAM_KEYS.get(key, (key,)):
            style[name] = value
    return style


# ---------------------------------------------------------------------------------------------
# Building an Adapted from the code and the options


def adapt(
    code: Any,
    spec: Any,
    *,
    params: Mapping[str, str] | None = None,
    init: str | Sequence[str] = (),
    grads: Mapping[str, str] | None = None,
    output: str | None = None,
    no_grad: str | Sequence[str] = (),
    backward_args: str | Sequence[str] | None = None,
    forward: str = "forward",
    setup: str | Sequence[str] = (),
) -> Adapted:
    """The user's ``code`` adapted for checking against ``spec`` (see the module docstring).

    Args:
        code: a class; a pair ``(forward, backward)`` of functions; a loss function returning
            ``(loss, dfirst)``; a :class:`Method`; or a jax function (``jax.custom_vjp``, ...).
        spec: the :class:`~handlayers.testing.Spec` of the reference.
        params: ``{INPUT: ATTR}``: set the input as the layer's attribute before forward, not
            passed to it; ``"ATTR:row"`` gives a 1-d input as a ``(1, d)`` row.
        init: constructor arguments, in order: an input's name, or ``"INPUT.AXIS"`` for a size.
        grads: ``{dINPUT: ATTR}``: after backward, read that gradient from the attribute.
        output: read forward's result from this attribute.
        no_grad: inputs the code computes no gradient for (not compared).
        backward_args: what backward is called with: ``"dout"``, an input's name, ``"@ATTR"``.
        forward: the method that computes the output (the nnfs book's losses: ``"calculate"``,
            the mean of the per-row losses their ``forward`` returns; it calls ``forward``).
        setup: methods called with no arguments, in order, on each new object, after ``params``
            are set and before ``forward`` (the nnfs book's later losses: ``"new_pass"``, which
            starts the running sums their ``calculate`` adds to).

    ``init``, ``no_grad``, ``backward_args`` and ``setup`` take a sequence of names, or one name
    alone (``setup="new_pass"`` is ``setup=["new_pass"]``).

    Raises:
        ConventionError: where an option does not fit the code or names an unknown input.
    """
    init, no_grad, setup = _names(init), _names(no_grad), _names(setup)
    backward_args = None if backward_args is None else _names(backward_args)
    args, labels = tuple(spec.args), tuple(spec.labels)
    params_ = {k: (v.removesuffix(":row"), v.endswith(":row")) for k, v in (params or {}).items()}
    grads_ = {_input_of(k, args): v for k, v in (grads or {}).items()}
    for name in (*params_, *no_grad, *(a.partition(".")[0] for a in init)):
        _known(name, args)
    for arg in backward_args or ():
        if arg != "dout" and not arg.startswith("@"):
            _known(arg, args)
    for arg in init:
        _, _, axis = arg.partition(".")
        if axis and not re.fullmatch("-?[0-9]+", axis):  # not "--1", nor a digit int() cannot read
            raise ConventionError(f"--init {arg}: expected INPUT or INPUT.AXIS with AXIS a number")
    kind, name = _kind(code, forward)
    attribute_options = {
        "--param": params_,
        "--grad": grads_,
        "--output": output,
        "--backward-args": backward_args,
        "--forward": forward != "forward",
        "--setup": setup,
    }
    given = [flag for flag, value in attribute_options.items() if value]
    if kind != "class" and given:
        verb = "fits" if len(given) == 1 else "fit"
        raise ConventionError(f"{' and '.join(given)} {verb} a class, not {_kind_words(kind)} {name}")
    if init and kind != "class" and not isinstance(code, Method):
        raise ConventionError(f"--init fits a class or CLASS.METHOD, not {_kind_words(kind)} {name}")
    defaults = keyword_defaults(spec.reference, args)
    adapted = Adapted(
        code,
        kind,
        name,
        args,
        labels,
        params_,
        init,
        grads_,
        output,
        frozenset(no_grad),
        backward_args,
        defaults,
        library="jax" if kind == "jax" else None,
        forward=forward,
        setup=setup,
        outputs=tuple(spec.outputs),
    )
    if kind == "loss":
        return dataclasses.replace(adapted, compared=(0,), unit_dout=True)
    compared = tuple(i for i, a in enumerate(args) if a not in adapted.no_grad)
    unit = kind == "class" and _starts_backpropagation(adapted)
    if kind == "class":
        _fits_class(adapted, _keyword_names(spec.reference, args))
    return dataclasses.replace(adapted, compared=compared, unit_dout=unit)


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    """One name, or a sequence of them, as a tuple: a string is one name, not its letters."""
    return (value,) if isinstance(value, str) else tuple(value)


def _kind(code: Any, forward: str) -> tuple[str, str]:
    if isinstance(code, tuple) and len(code) == 2 and all(callable(c) for c in code):
        return "pair", _pair_name(*code)
    if isinstance(code, Method):
        return "loss", f"{code.cls.__name__}.{code.name}"
    if isinstance(code, type):
        missing = [m for m in (forward, "backward") if not callable(getattr(code, m, None))]
        if missing:
            raise ConventionError(f"{code.__name__} has no {' and no '.join(missing)} method")
        return "class", code.__name__
    if isinstance(code, jax.custom_vjp | jax.custom_jvp) or hasattr(code, "lower"):
        return "jax", _name(code)
    if callable(code):
        return "loss", _name(code)
    raise ConventionError(f"cannot check a {type(code).__name__}: expected a class, functions or a jax function")


def _pair_name(forward: Any, backward: Any) -> str:
    """The name of a pair: ``affine`` for ``affine_forward``, ``conv_naive`` for
    ``conv_forward_naive`` and ``conv_backward_naive``, ``batchnorm_alt`` for ``batchnorm_forward``
    and ``batchnorm_backward_alt``; the forward function's own where it has no ``_forward``."""
    base, cut, suffix = _name(forward).rpartition("_forward")
    if not (cut and base and suffix[:1] in ("", "_")):
        return _name(forward)
    other = _name(backward).removeprefix(base + "_backward")
    return base + (suffix or (other if other[:1] == "_" else ""))


def _kind_words(kind: str) -> str:
    return {"pair": "the function pair", "loss": "the loss function", "jax": "the jax function"}[kind]


def _name(code: Any) -> str:
    """Its ``__name__`` (a jax function's is its function's), else its type's (a callable object)."""
    return getattr(code, "__name__", None) or type(code).__name__


def _input_of(gradient: str, args: Sequence[str]) -> str:
    if not gradient.startswith("d") or gradient[1:] not in args:
        grads = ", ".join("d" + a for a in args)
        raise ConventionError(f"--grad {gradient}: no such gradient; the reference's are {grads}")
    return gradient[1:]


def _known(name: str, args: Sequence[str]) -> None:
    if name not in args:
        raise ConventionError(f"no input named {name!r}; the reference's inputs are {', '.join(args)}")


def keyword_defaults(function: Any, inputs: Sequence[str] = ()) -> dict[str, Any]:
    """``function``'s parameters that have a default, with it, less its ``inputs`` (a reference's,
    which the checker passes by position even where they have a default); none where its signature
    cannot be read."""
    parameters = getattr(signature(function), "parameters", {}).values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty and p.name not in inputs}


def _keyword_names(function: Any, inputs: Sequence[str]) -> tuple[str, ...]:
    """The names ``function`` (a reference) takes keywords by, less its ``inputs``: with a default
    or not (a declared reference's ``alpha`` that ``--kw`` gives every example)."""
    by_name = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = getattr(signature(function), "parameters", {}).values()
    return tuple(p.name for p in parameters if p.kind in by_name and p.name not in inputs)


def _starts_backpropagation(adapted: Adapted) -> bool:
    """Whether backward takes no dout: it can be called without arguments, or is given some without dout."""
    if adapted.backward_args is not None:
        return "dout" not in adapted.backward_args
    return takes_no_dout(adapted.code)


def takes_no_dout(cls: type) -> bool:
    """Whether ``cls.backward`` can be called with no argument (``backward()``, ``backward(dout=1)``)."""
    return signature(cls.backward) is not None and binds(cls.backward, None)  # None for self


def _fits_class(adapted: Adapted, keyword_names: Sequence[str]) -> None:
    """Raise :class:`ConventionError` where forward or the constructor cannot take what they get
    (the constructor may take any of the reference's ``keyword_names``)."""
    cls = adapted.code
    passed = [a for a in adapted.args if a not in adapted.params and a not in adapted.init]
    method = getattr(cls, adapted.forward)
    checks = [(cls.__init__, [None, *adapted.init], "constructor"), (method, [None, *passed], "forward")]
    for name in adapted.setup:
        found = inspect.getattr_static(cls, name, None)
        if isinstance(found, staticmethod | classmethod):  # called on the class as on the object
            fits = binds(getattr(cls, name))
        else:
            fits = inspect.isfunction(found) and binds(found, None)
        if name.startswith("__") or not fits:  # __init__ again would undo --param
            raise ConventionError(f"--setup {name}: {cls.__name__} has no method {name}() that takes no arguments")
    for function, arguments, what in checks:
        found = signature(function)
        keywords = {k: None for k in keyword_names if k in getattr(found, "parameters", ())}
        if not binds(function, *arguments, **(keywords if what == "constructor" else {})):
            names = ", ".join(arguments[1:]) or "no arguments"
            shown = adapted.forward if what == "forward" else what  # calculate, for --forward calculate
            hint = {
                "forward": "; pass some inputs another way (--param, --init)",
                "constructor": "; pass them with --init (an input, or INPUT.AXIS for a size: --init W.0,W.1)",
            }[what]
            if what == "forward" and keywords:  # the checker gives a reference's keywords to the constructor
                which = "a keyword" if len(keywords) == 1 else "keywords"
                hint = f"; {', '.join(keywords)}: {which} of the reference, given to the constructor, not to {shown}"
            raise ConventionError(f"{cls.__name__}'s {shown} {found} cannot take {names}{hint}")
