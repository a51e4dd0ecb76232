"""What exists only so that a Palladium project runs unchanged on pipeforge.

The rooms: ``names`` (the table of Palladium's public names), ``legacy``
(Palladium's process-wide helpers), ``scripts`` (the ``pld-*`` commands) and
``cache`` (Palladium's ``palladium.cache``). Nothing else in pipeforge imports
this package, except the factory, which looks ``palladium.*`` names up in
``names`` (docs/architecture.md).
"""
