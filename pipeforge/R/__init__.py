"""Models and dataset loaders written in R, called through rpy2 (Palladium's ``palladium.R``).

An R script defines functions; :class:`DatasetLoader` calls one that
returns ``list(X, y)``, :class:`ClassificationModel` and
:class:`RegressionModel` call one that trains on ``(X, y)`` and use R's
``predict()`` on the object it returns. Needs R and the ``r`` extra
(``pip install 'pipeforge[r]'``, rpy2 < 3.6).

``pipeforge.R`` is the name users and configs write (and Palladium's
``palladium.R`` names resolve here); its parts are:

* :mod:`pipeforge.R.session`: starting R once per process, the R lock;
* :mod:`pipeforge.R.convert`: :func:`to_r` and :func:`to_python`, with the
  table of conversions;
* :mod:`pipeforge.R.script`: :class:`RObject` (an R script's function) and
  :class:`DatasetLoader`;
* :mod:`pipeforge.R.models`: the models and :class:`Rpy2Transform`.
"""

from __future__ import annotations

from .convert import to_python, to_r
from .models import AbstractModel, ClassificationModel, RegressionModel, Rpy2Transform
from .script import DatasetLoader, RObject

__all__ = [
    "DatasetLoader",
    "AbstractModel",
    "ClassificationModel",
    "RegressionModel",
    "RObject",
    "Rpy2Transform",
    "to_r",
    "to_python",
]

# Until the parts above were split out, every class lived in the module pipeforge.R, and
# that is the name pickled models, model metadata and op config versions recorded for
# them. The classes keep it as their __module__, so what pipeforge writes about them is
# the same as before (and loads with any version that has pipeforge.R.<Class>).
for _cls in (
    DatasetLoader,
    AbstractModel,
    ClassificationModel,
    RegressionModel,
    RObject,
    Rpy2Transform,
):
    _cls.__module__ = __name__
del _cls
