"""Which types a model file may contain: an allow-list of exact names, checked before loading.

A skops file names every object it rebuilds by module and class (or function) name, and loading
it constructs those objects. mlops loads a file only when every name it contains is in this
allow-list:

- scikit-learn's estimator and transformer classes (`sklearn.utils.all_estimators()`), and the
  internal helper types fitted estimators hold (trees, losses and links, binners, neighbour
  trees and distance metrics, optimisers), each by exact name;
- NumPy arrays, dtypes, scalar types and random states; SciPy sparse matrices and arrays;
- plain Python data types (`dict`, `list`, `str`, ...), never a `builtins` function;
- a short list of NumPy functions a `FunctionTransformer` may reasonably hold (`numpy.log1p`...);
- the scikit-learn wrappers of LightGBM and XGBoost and their boosters (`BOOST_TYPES`, the
  `boost` extra): skops rebuilds a booster through the library's own `__setstate__`, from
  LightGBM's text model format or XGBoost's serialised buffer, by their native loaders (no
  pickle), with the `collections` containers their fitted attributes hold;
- the project's own types, by exact name, from `pipeline.yaml` (`model.trusted_types`).

Names are compared exactly: `numpy.testing._private.utils.runstring` is not trusted because
`numpy.ndarray` is. The names are read twice: by skops (`get_untrusted_types`, what skops itself
would refuse) and by walking the file's `schema.json` (every node's module and class, including
the ones skops trusts by default), so neither view can hide a type from the other. An array
member stored with Python objects in it (a pickle inside the zip) is refused too.
"""

from __future__ import annotations

import functools
import json
import zipfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

# plain data types only: a `builtins` callable (exec, eval, getattr, open, ...) is never trusted
BUILTIN_TYPES = frozenset(
    f"builtins.{name}"
    for name in (
        "bool",
        "int",
        "float",
        "complex",
        "str",
        "bytes",
        "bytearray",
        "list",
        "tuple",
        "dict",
        "set",
        "frozenset",
        "slice",
    )
)

# the only functions a model may hold (e.g. in a FunctionTransformer): pure NumPy ufuncs
FUNCTIONS = frozenset(
    f"numpy.{name}"
    for name in ("log", "log1p", "exp", "expm1", "sqrt", "square", "abs", "absolute", "reciprocal")
)

NUMPY_TYPES = frozenset(
    {
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.ma.core.MaskedArray",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
    }
)

# helper types of fitted scikit-learn estimators (module: class names), by exact name
SKLEARN_HELPERS: dict[str, tuple[str, ...]] = {
    "sklearn.tree._tree": ("Tree",),
    "sklearn.ensemble._hist_gradient_boosting.predictor": ("TreePredictor",),
    "sklearn.ensemble._hist_gradient_boosting.binning": ("_BinMapper",),
    "sklearn._loss.loss": (
        "AbsoluteError",
        "ExponentialLoss",
        "HalfBinomialLoss",
        "HalfGammaLoss",
        "HalfMultinomialLoss",
        "HalfPoissonLoss",
        "HalfSquaredError",
        "HalfTweedieLoss",
        "HalfTweedieLossIdentity",
        "HuberLoss",
        "PinballLoss",
    ),
    "sklearn._loss.link": (
        "HalfLogitLink",
        "IdentityLink",
        "Interval",
        "LogLink",
        "LogitLink",
        "MultinomialLogit",
    ),
    "sklearn._loss._loss": (
        "CyAbsoluteError",
        "CyExponentialLoss",
        "CyHalfBinomialLoss",
        "CyHalfGammaLoss",
        "CyHalfMultinomialLoss",
        "CyHalfPoissonLoss",
        "CyHalfSquaredError",
        "CyHalfTweedieLoss",
        "CyHalfTweedieLossIdentity",
        "CyHuberLoss",
        "CyPinballLoss",
    ),
    "sklearn.linear_model._sgd_fast": (
        "EpsilonInsensitive",
        "Hinge",
        "ModifiedHuber",
        "SquaredEpsilonInsensitive",
        "SquaredHinge",
    ),
    "sklearn.neighbors._kd_tree": ("KDTree", "KDTree32", "KDTree64"),
    "sklearn.neighbors._ball_tree": ("BallTree", "BallTree32", "BallTree64"),
    "sklearn.metrics._dist_metrics": tuple(
        f"{kind}Distance{bits}"
        for kind in (
            "BrayCurtis",
            "Canberra",
            "Chebyshev",
            "Dice",
            "Euclidean",
            "Hamming",
            "Haversine",
            "Jaccard",
            "Mahalanobis",
            "Manhattan",
            "Matching",
            "Minkowski",
            "RogersTanimoto",
            "RussellRao",
            "SEuclidean",
            "SokalMichener",
            "SokalSneath",
        )  # not PyFuncDistance: it holds a Python function
        for bits in ("32", "64")
    ),
    "sklearn.neural_network._stochastic_optimizers": ("AdamOptimizer", "SGDOptimizer"),
    "sklearn.utils._bunch": ("Bunch",),
}

# gradient boosting libraries (the `boost` extra), by exact name: their scikit-learn wrappers,
# the booster each holds (rebuilt from the model's text / serialised form by the library's
# native loader), and the `collections` containers of their fitted attributes (`best_score_`
# is a defaultdict whose factory is OrderedDict: a type, never a function)
BOOST_TYPES = frozenset(
    {
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.sklearn.LGBMRanker",
        "lightgbm.basic.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.sklearn.XGBRFClassifier",
        "xgboost.sklearn.XGBRFRegressor",
        "xgboost.sklearn.XGBRanker",
        "xgboost.core.Booster",
        "collections.OrderedDict",
        "collections.defaultdict",
    }
)

SPARSE_KINDS = ("csr", "csc", "coo", "bsr", "dia", "dok", "lil")
_SPARSE_MODULES = {"csr": "_csr", "csc": "_csc", "coo": "_coo", "bsr": "_bsr", "dia": "_dia"}
_SPARSE_MODULES.update(dok="_dok", lil="_lil")


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.cache
def _sklearn_estimators() -> frozenset[str]:
    from sklearn.utils import all_estimators

    return frozenset(_type_name(cls) for _, cls in all_estimators())


@functools.cache
def _numpy_types() -> frozenset[str]:
    import numpy as np

    names = set(NUMPY_TYPES)
    for scalar in set(np.sctypeDict.values()):
        names.add(_type_name(scalar))
        names.add(f"numpy.{scalar.__name__}")
    for attr in dir(np.random):
        obj = getattr(np.random, attr)
        if isinstance(obj, type) and issubclass(obj, np.random.BitGenerator):
            names.add(f"numpy.random.{attr}")
            names.add(_type_name(obj))
    return frozenset(names)


def _sparse_types() -> frozenset[str]:
    names = set()
    for kind in SPARSE_KINDS:
        module = f"scipy.sparse.{_SPARSE_MODULES[kind]}"
        for suffix in ("matrix", "array"):
            names.add(f"{module}.{kind}_{suffix}")
            names.add(f"scipy.sparse.{kind}_{suffix}")
    return frozenset(names)


@functools.cache
def builtin_allow_list() -> frozenset[str]:
    """Every type name mlops trusts without being told (the project's own come on top)."""
    helpers = {f"{m}.{c}" for m, classes in SKLEARN_HELPERS.items() for c in classes}
    return frozenset(
        BUILTIN_TYPES
        | FUNCTIONS
        | BOOST_TYPES
        | {"mlops.bundle.labels.EncodedLabels"}  # XGBoost's labels (mlops.bundle.labels)
        | helpers
        | _sklearn_estimators()
        | _numpy_types()
        | _sparse_types()
    )


def _walk(state: Any) -> Iterator[str]:
    """Every `module.class` named by a node of a skops schema (iteratively: no recursion limit)."""
    stack = [state]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            module, cls = item.get("__module__"), item.get("__class__")
            if module is not None or cls is not None:
                yield f"{module}.{cls}"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _object_arrays(zf: zipfile.ZipFile) -> list[str]:
    """Array members whose dtype holds Python objects (only a pickle can rebuild those)."""
    import numpy as np

    found = []
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            continue
        with zf.open(info) as fh:
            try:
                version = np.lib.format.read_magic(fh)
                fmt = np.lib.format
                read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                _shape, _order, dtype = read(fh)
            except (ValueError, OSError, EOFError):
                found.append(f"{info.filename} (not a NumPy array file)")
                continue
        if dtype.hasobject:
            found.append(f"{info.filename} (an array of Python objects: a pickle)")
    return found


def audit(path: Path, trusted: Collection[str] = ()) -> tuple[list[str], list[str]]:
    """(refused, every name) for the skops file at `path`; nothing refused: safe to load.

    `trusted` adds exact names (the project's `model.trusted_types`); `builtins` names other
    than plain data types are refused even when listed there. Raises `ValueError`,
    `KeyError`, `OSError` or `zipfile.BadZipFile` when the file is not a skops archive.
    """
    import skops.io as sio

    extra = {t for t in trusted if not t.startswith("builtins.")}
    allowed = builtin_allow_list() | extra
    with zipfile.ZipFile(path) as zf:
        schema = json.loads(zf.read("schema.json"))
        arrays = _object_arrays(zf)
    names = sorted(set(_walk(schema)) | set(sio.get_untrusted_types(file=path)))
    return [n for n in names if n not in allowed] + arrays, names


def type_names(schema: Any) -> list[str]:
    """Every `module.class` a skops `schema.json` (parsed) names, sorted."""
    return sorted(set(_walk(schema)))
