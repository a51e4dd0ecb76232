"""What exists only so that a Palladium project runs unchanged on pipeforge.

The rooms: ``names`` (the table of Palladium's public names), ``legacy``
(Palladium's process-wide helpers), ``scripts`` (the ``pld-*`` model
commands), ``serve`` (``pld-devserver`` and ``pld-dockerize``), ``config``
(Palladium's ``process_config`` and its handlers) and ``cache`` (Palladium's
``palladium.cache``). Nothing else in pipeforge imports
this package, except the factory, which looks ``palladium.*`` names up in
``names`` (docs/architecture.md).
"""

# The rooms are imported by their names: importing them here would load the
# commands whenever the factory looks a ``palladium.*`` name up.
__all__: list[str] = []
